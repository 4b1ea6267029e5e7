"""Faults: the server process killed mid-run, then restarted (its training process, an orphan, is stopped)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from helpers import ROOT, tiny_config, write_colour_images
from tlcore import worker
from tlcore.jobs import JobManager
from tlcore.runs import RunState, RunStore


def test_killed_mid_run_becomes_interrupted_and_restarts_from_its_config(tmp_path):
    data = write_colour_images(tmp_path / "data", per_class=10)
    ws = tmp_path / "ws"
    store = RunStore(ws)
    finished_cfg = tmp_path / "quick.json"
    finished_cfg.write_text(tiny_config(data, backbone="vgg16", epochs=1).to_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TLS_EXECUTOR": "process"}     # the CLI's default
    done = subprocess.run([sys.executable, "-m", "tlcore", "train", "--config", finished_cfg, "--workspace", ws],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    finished_id = store.list()[0].id
    model_bytes = (store.run_dir(finished_id) / "model.keras").read_bytes()

    long_cfg = tmp_path / "long.json"
    long_cfg.write_text(tiny_config(data, backbone="vgg16", epochs=500).to_json())
    proc = subprocess.Popen([sys.executable, "-m", "tlcore", "train", "--config", long_cfg, "--workspace", ws],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in proc.stderr:            # wait for real training progress, then kill the "server" hard
            if "epoch" in line:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    [victim] = [r for r in store.list() if r.id != finished_id]
    assert victim.state == RunState.RUNNING, "the killed process could not record anything"
    orphan = json.loads((store.run_dir(victim.id) / "worker.json").read_text())
    assert orphan["executor"] == "process" and orphan["parent"] == proc.pid

    manager = JobManager(store, max_concurrent=1)          # the restarted server
    try:
        assert manager.recovered == [victim.id]
        assert store.get(victim.id).state == RunState.INTERRUPTED
        assert not worker.same_process(orphan["pid"], orphan["start"]), "the orphan training process was stopped"
        assert store.get(finished_id).state == RunState.DONE
        assert (store.run_dir(finished_id) / "model.keras").read_bytes() == model_bytes
        cfg = store.config(victim.id)
        cfg.epochs = 1
        store.run_dir(victim.id).joinpath("config.json").write_text(cfg.to_json())
        again = manager.restart(victim.id, owner="cli")
        assert manager.wait(again, 600) == RunState.DONE
    finally:
        manager.shutdown()

