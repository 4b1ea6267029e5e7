"""Runs in their own processes (issue 14): a worker that dies, a run past the memory cap, a server killed while its
workers train, and the worker protocol (worker.json, the stop file, the outcome the server copies into runs.db)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import wait_until, ROOT, tiny_config, write_colour_images
from tlcore import worker
from tlcore.jobs import JobManager
from tlcore.runs import RunState, RunStore
from tlcore.worker_process import ProcessExecutor




def _training(store: RunStore, run_id: str) -> bool:
    """True once the run has finished an epoch and started the next one's batches (mid-epoch)."""
    types = [e["type"] for e in store.read_events(run_id)]
    return "epoch" in types and "batch" in types[types.index("epoch"):]


@pytest.fixture
def data(tmp_path):
    return write_colour_images(tmp_path / "data", per_class=10)


@pytest.mark.parametrize("exitcode, cap, expected", [
    (-signal.SIGKILL, None, worker.MEMORY_SENTENCE),
    (-signal.SIGSEGV, None, "The training process crashed (SIGSEGV)"),
    (-signal.SIGTERM, None, "The training process crashed (SIGTERM)"),
    (3, None, "The training process ended unexpectedly (exit code 3)"),
    (0, None, "The training process ended unexpectedly (exit code 0)"),
    (-signal.SIGKILL, 900, "The training process ran out of memory (it needed more than the 900 MB each run may use)"),
])
def test_a_dead_worker_is_one_plain_sentence(exitcode, cap, expected):
    sentence = worker.death_sentence(exitcode, cap)
    assert sentence.startswith(expected) and sentence.endswith(".") and "\n" not in sentence
    assert "Traceback" not in sentence


def test_the_worker_writes_its_folder_and_the_server_copies_the_outcome(tmp_path, data):
    store = RunStore(tmp_path / "ws")
    run_id = store.create(tiny_config(data), owner="a")
    folder = worker.FolderStore(store.workspace)
    with pytest.raises(RuntimeError, match="never opens the run index"):
        folder.get(run_id)
    folder.set_state(run_id, RunState.RUNNING)                   # the server already recorded that
    assert worker.apply_outcome(store, run_id) is None
    folder.set_state(run_id, RunState.DONE, metrics={"accuracy": 0.5})
    assert store.get(run_id).state == RunState.QUEUED            # runs.db untouched by the worker
    assert worker.apply_outcome(store, run_id) == RunState.DONE
    assert store.get(run_id).metrics == {"accuracy": 0.5}
    assert not folder.stop_requested(run_id)
    store.request_stop(run_id)
    worker.request_folder_stop(store.run_dir(run_id))
    assert folder.stop_requested(run_id)


def test_kill_9_mid_epoch_fails_the_run_with_a_sentence_and_the_next_run_starts(tmp_path, data):
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=1, executor="process", warm=1)
    try:
        victim = manager.submit(tiny_config(data, backbone="vgg16", epochs=500), owner="a")
        after = manager.submit(tiny_config(data, backbone="vgg16", epochs=1), owner="b")
        wait_until(lambda: _training(store, victim), 300, "the first run to train")
        info = json.loads((store.run_dir(victim) / "worker.json").read_text())
        assert info["executor"] == "process" and info["host"] == worker.host() and info["pid"] != os.getpid()
        assert store.get(after).state == RunState.QUEUED
        os.kill(info["pid"], signal.SIGKILL)
        assert manager.wait(victim, timeout=5) == RunState.FAILED, "the run fails within 5 s of its worker's death"
        assert store.get(victim).error == worker.MEMORY_SENTENCE
        assert manager.wait(after, 300) == RunState.DONE, store.get(after).error   # the slot was freed
    finally:
        manager.shutdown()


def test_a_run_past_the_memory_cap_fails_with_the_memory_sentence(tmp_path, data):
    """Training from scratch at 224 px, batch 32, needs far more than TensorFlow's ~1 GB baseline."""
    store = RunStore(tmp_path / "ws")
    cap = 1500
    manager = JobManager(store, max_concurrent=1, executor=ProcessExecutor(warm=0, memory_mb=cap))
    try:
        config = tiny_config(data, backbone="vgg16", strategy="scratch", image_size=224, batch_size=32, epochs=50)
        run_id = manager.submit(config, owner="a")
        assert manager.wait(run_id, 300) == RunState.FAILED
        record = store.get(run_id)
        assert record.error.startswith("The training process ran out of memory") and f"{cap} MB" in record.error
        assert json.loads((store.run_dir(run_id) / "worker.json").read_text())["peak_rss_mb"] > cap
        small = manager.submit(tiny_config(data, backbone="vgg16", epochs=1), owner="a")   # the server lives on
        assert manager.wait(small, 300) == RunState.DONE, store.get(small).error
    finally:
        manager.shutdown()


def test_a_stop_reaches_the_worker_process(tmp_path, data):
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=1, executor="process", warm=0)
    try:
        run_id = manager.submit(tiny_config(data, backbone="vgg16", epochs=500), owner="a")
        wait_until(lambda: _training(store, run_id), 300, "the run to train")
        manager.stop(run_id)
        assert manager.wait(run_id, 120) == RunState.STOPPED
        assert len([e for e in store.read_events(run_id) if e["type"] == "epoch"]) < 500
        assert (store.run_dir(run_id) / "model.keras").is_file()
    finally:
        manager.shutdown()


_SERVER = """
import sys, time
from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunStore
manager = JobManager(RunStore(sys.argv[1]), max_concurrent=2, executor="process", warm=0)
for owner in ("a", "b"):
    print(manager.submit(RunConfig.load(sys.argv[2]), owner=owner), flush=True)
time.sleep(3600)
"""


def test_server_killed_while_workers_train_orphans_stopped_runs_interrupted(tmp_path, data):
    ws = tmp_path / "ws"
    store = RunStore(ws)
    cfg = tmp_path / "long.json"
    cfg.write_text(tiny_config(data, backbone="vgg16", epochs=500).to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TLS_EXECUTOR": "process"}
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(ws), str(cfg)], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        ids = [server.stdout.readline().strip() for _ in range(2)]
        for run_id in ids:
            wait_until(lambda: _training(store, run_id), 300, "both runs to train")
        workers = [json.loads((store.run_dir(r) / "worker.json").read_text()) for r in ids]
        assert all(w["parent"] == server.pid and w["executor"] == "process" for w in workers)
    finally:
        server.kill()
        server.wait(60)
    assert all(store.get(r).state == RunState.RUNNING for r in ids), "the killed server could not record anything"

    manager = JobManager(store, max_concurrent=1, executor="thread")        # the restarted server
    try:
        assert sorted(manager.recovered) == sorted(ids)
        for run_id, info in zip(ids, workers):
            assert not worker.same_process(info["pid"], info["start"]), "the orphan worker was stopped"
            assert store.get(run_id).state == RunState.INTERRUPTED
        again = manager.restart(ids[0], owner="a")
        assert store.config(again) == store.config(ids[0]) and store.get(again).state in (RunState.QUEUED,
                                                                                         RunState.RUNNING)
        manager.stop(again)
        manager.wait(again, 120)
    finally:
        manager.shutdown()


def test_an_orphan_worker_is_killed_at_start_up_and_a_live_servers_worker_is_not(tmp_path, data):
    """Two "workers" (sleep processes): one whose server is gone, one whose server (this process) lives."""
    store = RunStore(tmp_path / "ws")
    orphan_run, live_run = (store.create(tiny_config(data), owner=o) for o in ("a", "b"))
    gone = subprocess.Popen(["bash", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE,
                            text=True)
    orphan_pid = int(gone.stdout.readline())
    gone.wait(30)                                                   # its "server" (bash) has exited
    child = subprocess.Popen(["sleep", "300"])
    try:
        worker.write_worker_json(store.run_dir(orphan_run), executor="process", pid=orphan_pid, host=worker.host(),
                                 start=worker.process_start(orphan_pid), parent=gone.pid, parent_host=worker.host(),
                                 parent_start=None)
        worker.write_worker_json(store.run_dir(live_run), executor="process", **worker.server_fields(child.pid))
        for run_id in (orphan_run, live_run):
            store.set_state(run_id, RunState.RUNNING)
        assert worker.stop_orphans(store) == [orphan_run]
        assert not worker.same_process(orphan_pid, None)
        assert child.poll() is None, "a worker whose server lives is left alone"
        assert (store.run_dir(orphan_run) / worker.STOP).exists()
    finally:
        child.kill()
        child.wait(30)


def test_a_cluster_address_is_checked_before_ray_waits_for_it():
    """`answers` needs no Ray: a TCP check of host:port (ray:// too); `auto` is left to Ray."""
    import socket

    from tlcore.worker_ray import answers

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert answers(f"127.0.0.1:{port}") and answers(f"ray://127.0.0.1:{port}")
    assert not answers(f"127.0.0.1:{port}", timeout=1)           # closed now
    assert not answers("no-port-here") and answers("auto")
