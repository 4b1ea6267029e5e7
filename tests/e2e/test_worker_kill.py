"""A run's training process killed with SIGKILL (issue 14): the Streamlit server keeps answering, the run fails
with the plain memory sentence on the Train page, and the page stays usable. Runs train in child processes here
(the app's default, ``TLS_EXECUTOR=process`` in ``_e2e.Server``)."""
from __future__ import annotations

import json
import os
import signal
import urllib.request

from helpers import wait_until
from _e2e import main, settle, shot, start_long_run

from tlcore.runs import RunState, RunStore
from tlcore.worker import MEMORY_SENTENCE




def _training_worker(store: RunStore):
    """(run id, worker pid) once a run's child process has finished an epoch; None before."""
    for record in store.list():
        info_path = store.run_dir(record.id) / "worker.json"
        if record.state == RunState.RUNNING and info_path.is_file():
            if any(e["type"] == "epoch" for e in store.read_events(record.id)):
                return record.id, json.loads(info_path.read_text())["pid"]
    return None


def _health(server) -> str:
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as resp:
        return resp.read().decode()


def test_a_killed_training_process_fails_its_run_and_the_server_lives_on(page, server):
    page.goto(server.url)
    start_long_run(page)
    store = RunStore(server.workspace)
    run_id, pid = wait_until(lambda: _training_worker(store), 600, "the run's training process to train an epoch")
    assert pid != server.proc.pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: store.get(run_id).state == RunState.FAILED, 5, "the run to fail within 5 s")
    assert store.get(run_id).error == MEMORY_SENTENCE
    for _ in range(3):
        assert _health(server) == "ok"
    assert server.proc.poll() is None, "the Streamlit server is still running"
    main(page).get_by_text("The training process ran out of memory").first.wait_for(timeout=60_000)
    settle(page)
    shot(page, "worker_killed")
    assert page.get_by_test_id("stException").count() == 0, "no traceback on the page"
