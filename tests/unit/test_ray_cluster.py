"""Scale-out on Ray (issue 14): a local head on 127.0.0.1 with 2 CPUs, 4 runs from 2 owners through the queue.

All finish, the order follows the fairness rule (first come, first served between people, one run per person at a
time), every run's worker.json says ``executor: "ray"``, and runs.db is written by this process only. Then one run
over both CPUs: ``workers=2`` trains on two Ray Train workers under one MultiWorkerMirroredStrategy. Skips when
Ray is not installed (``pip install -r requirements-ray.txt``)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import ROOT, tiny_config, write_colour_images
from tlcore.jobs import JobManager
from tlcore.runs import RunState, RunStore

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt to run this test")
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` on 127.0.0.1 with 2 CPUs; stopped at the end (`ray stop`)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")          # short: Ray's socket paths have a length limit
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(port),
                    "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--temp-dir", temp,
                    "--disable-usage-stats"], check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_four_runs_from_two_owners_train_on_the_cluster_in_fair_order(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_RAY_ADDRESS", cluster)
    monkeypatch.setenv("TLS_EXECUTOR", "ray")
    data = write_colour_images(tmp_path / "data", per_class=8)
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=2)
    try:
        assert manager.executor.name == "ray"
        submitted = [(owner, manager.submit(tiny_config(data, backbone="vgg16", epochs=1), owner=owner))
                     for owner in ("a", "a", "b", "b")]
        for _, run_id in submitted:
            assert manager.wait(run_id, 600) == RunState.DONE, store.get(run_id).error
    finally:
        manager.shutdown()
    records = {run_id: store.get(run_id) for _, run_id in submitted}
    (_, a1), (_, a2), (_, b1), (_, b2) = submitted
    assert records[b1].started < records[a2].started, "b's first run goes before a's second (one run per person)"
    assert records[a2].started >= records[a1].finished and records[b2].started >= records[b1].finished
    for run_id in records:
        info = json.loads((store.run_dir(run_id) / "worker.json").read_text())
        assert info["executor"] == "ray" and info["pid"] != os.getpid() and info["parent"] == os.getpid()
        assert not any(e["type"] == "warning" and "does not answer" in e.get("message", "")
                       for e in store.read_events(run_id)), "trained on the cluster, not here"


def test_a_cluster_that_does_not_answer_trains_here_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_RAY_ADDRESS", f"127.0.0.1:{_free_port()}")          # nothing listens there
    data = write_colour_images(tmp_path / "data", per_class=8)
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=1, executor="ray", warm=0)
    try:
        run_id = manager.submit(tiny_config(data, backbone="vgg16", epochs=1), owner="a")
        assert manager.wait(run_id, 600) == RunState.DONE, store.get(run_id).error
    finally:
        manager.shutdown()
    warnings = [e["message"] for e in store.read_events(run_id) if e["type"] == "warning"]
    assert any(w.startswith("The cluster at 127.0.0.1:") and "training here instead" in w for w in warnings)
    assert json.loads((store.run_dir(run_id) / "worker.json").read_text())["executor"] == "process"


def test_one_run_trains_over_two_ray_train_workers(cluster, tmp_path, monkeypatch):
    """workers=2: Ray Train's TensorflowTrainer runs the run on 2 workers of the head's 2 CPUs under one
    MultiWorkerMirroredStrategy (2 replicas in sync); the chief writes the run folder, the helper's scratch goes."""
    pytest.importorskip("ray.train.tensorflow", reason="one run over several workers needs ray[train]")
    monkeypatch.setenv("TLS_RAY_ADDRESS", cluster)
    data = write_colour_images(tmp_path / "data", per_class=8)
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=1, executor="ray")
    try:
        run_id = manager.submit(tiny_config(data, strategy="scratch", epochs=2, workers=2), owner="a")
        assert manager.wait(run_id, 600) == RunState.DONE, store.get(run_id).error
    finally:
        manager.shutdown()
    run_dir = store.run_dir(run_id)
    info = json.loads((run_dir / "worker.json").read_text())
    assert info["executor"] == "ray" and info["workers"] == 2 and info["parent"] == os.getpid()
    assert info["chief"]["pid"] not in (info["pid"], os.getpid()), "rank 0 is a Ray Train worker of its own"
    events = store.read_events(run_id)
    builds = [e for e in events if e["type"] == "phase" and e.get("phase") == "build"]
    assert builds and all(e["replicas"] == 2 and e["distribution"] == "MultiWorkerMirroredStrategy" for e in builds)
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]
    assert not any(e["type"] == "warning" and "one process here" in e["message"] for e in events)
    assert (run_dir / "model.keras").is_file() and store.get(run_id).metrics["epochs"] == 2
    assert not list(run_dir.parent.glob(f"{run_id}.rank*")), "the helper worker's scratch folder is removed"
    assert not list((store.workspace / "tmp" / "ray_train").glob("*")), "and Ray Train's own run folder"
