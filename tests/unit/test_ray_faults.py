"""Ray faults (issue 14): a worker node that dies mid-training, and a head that does not answer at submit time.

A local cluster (``ray.cluster_utils.Cluster``, all on this machine): a head with no CPUs, so that every run trains
on one of two worker nodes of 1 CPU each, and health checks of 1 s (3 missed: dead). The node training one
person's run dies, in two ways: every process of it is killed at once (a crash, an out-of-memory kill of the
raylet), or it freezes with its processes alive (SIGSTOP: a machine that loses power or its network, which only
the head's health checks notice). Either way the run fails within seconds with one sentence, the queue goes on
(the person's next run trains), and another person's run on the other node trains on and still answers Stop.
Skips when Ray is not installed (``pip install -r requirements-ray.txt``)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading

import pytest

from helpers import tiny_config, wait_until, write_colour_images
from tlcore.jobs import JobManager
from tlcore.runs import RunState, RunStore
from tlcore.worker import MEMORY_SENTENCE, same_process
from tlcore.worker_ray import NODE_SENTENCE, RESOURCES_SENTENCE, RayExecutor, RunFailedOnWorker, death_message

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt to run this test")
from ray.cluster_utils import Cluster  # noqa: E402


def _training(store: RunStore, run_id: str) -> bool:
    """True once the run has finished an epoch and started the next one's batches (mid-training)."""
    types = [e["type"] for e in store.read_events(run_id)]
    return "epoch" in types and "batch" in types[types.index("epoch"):]


def _worker(store: RunStore, run_id: str) -> dict:
    return json.loads((store.run_dir(run_id) / "worker.json").read_text())


@pytest.fixture
def nodes(monkeypatch):
    """A head without CPUs and two worker nodes of 1 CPU; everything is stopped at the end."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")          # short: Ray's socket paths have a length limit
    monkeypatch.setenv("RAY_TMPDIR", temp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    checks = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
              "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "_system_config": checks})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_a_node_that_dies_mid_training_fails_its_run_and_the_others_go_on(fault, nodes, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_RAY_ADDRESS", nodes.address)
    data = write_colour_images(tmp_path / "data", per_class=8)
    store = RunStore(tmp_path / "ws")
    manager = JobManager(store, max_concurrent=2, executor="ray")
    frozen: list[int] = []
    try:
        victim = manager.submit(tiny_config(data, backbone="vgg16", strategy="scratch", epochs=1000), owner="a")
        other = manager.submit(tiny_config(data, backbone="vgg16", strategy="scratch", epochs=1000), owner="b")
        after = manager.submit(tiny_config(data, backbone="vgg16", epochs=1), owner="a")
        wait_until(lambda: _training(store, victim) and _training(store, other), 300, "both runs to train")
        info = _worker(store, victim)
        assert info["executor"] == "ray" and info["node"] != _worker(store, other)["node"], "one run per node"
        assert store.get(after).state == RunState.QUEUED, "a's next run waits for a's first (one per person)"
        doomed = next(node for node in nodes.worker_nodes if node.node_id == info["node"])
        if fault == "killed":
            nodes.remove_node(doomed, allow_graceful=False)      # SIGKILL: raylet, object store, training worker
        else:
            frozen = [info["pid"], *(p.process.pid for procs in doomed.all_processes.values() for p in procs)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)

        assert manager.wait(victim, timeout=15) == RunState.FAILED, "the run fails within seconds of its node's death"
        assert store.get(victim).error == NODE_SENTENCE
        assert [e["message"] for e in store.read_events(victim) if e["type"] == "failed"] == [NODE_SENTENCE]
        if fault == "killed":
            assert not same_process(info["pid"], info["start"]), "no training process is left on the dead node"
        assert (store.run_dir(victim) / "stop").exists(), "a worker that comes back stops at its next batch"

        seen = len(store.read_events(other))
        wait_until(lambda: any(e["type"] == "batch" for e in store.read_events(other, after=seen)), 60,
                   "the other person's run to train on after the node's death")
        assert store.get(other).state == RunState.RUNNING
        manager.stop(other)
        assert manager.wait(other, 120) == RunState.STOPPED, store.get(other).error
        assert store.get(other).metrics and (store.run_dir(other) / "model.keras").is_file(), "kept its model"

        assert manager.wait(after, 300) == RunState.DONE, store.get(after).error     # the queue goes on
        assert _worker(store, after)["node"] != info["node"]
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGKILL)
        manager.shutdown()


def test_a_head_that_does_not_answer_fails_the_run_with_a_sentence_when_nothing_can_train_here(tmp_path):
    """Without a local executor to fall back on, the run fails at once, naming the address and the fix."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"            # bound, not listening: nothing answers there
        store = RunStore(tmp_path / "ws")
        run_id = store.create(tiny_config(str(tmp_path / "none")), owner="a")
        assert RayExecutor(address=address).run(store, run_id, threading.Event()) == RunState.FAILED
    message = f"The cluster at {address} does not answer: ask the operator to start it, then retry."
    assert store.get(run_id).error == message
    assert [e["message"] for e in store.read_events(run_id) if e["type"] == "failed"] == [message]
    assert not ray.is_initialized(), "ray.init was never called: it would wait minutes for a head that is not there"


def _failures():
    """Ray's and Ray Train's errors as a run meets them, with the sentence each must become (None: the generic one)."""
    import ray.exceptions as rex
    train = pytest.importorskip("ray.train.v2._internal.exceptions", reason="Ray Train's errors need ray[train]")
    from ray.train import WorkerGroupError

    own = RunFailedOnWorker("The images could not be read: import them again.")
    return [
        (rex.NodeDiedError("node gone"), NODE_SENTENCE),
        (rex.ActorDiedError(), NODE_SENTENCE),
        (WorkerGroupError("x", {0: train.WorkerHealthCheckFailedError("x", rex.ActorDiedError())}), NODE_SENTENCE),
        (WorkerGroupError("x", {1: train.UserExceptionWithTraceback(own, "traceback")}), str(own)),
        (train.InsufficientClusterResourcesError("x"), RESOURCES_SENTENCE),
        (rex.OutOfMemoryError("x"), MEMORY_SENTENCE),
        (ValueError("x"), None),
    ]


def test_each_ray_failure_becomes_its_plain_sentence():
    for error, sentence in _failures():
        assert death_message(error) == sentence, type(error).__name__
