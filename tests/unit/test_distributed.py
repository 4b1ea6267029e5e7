"""tf.distribute: MirroredStrategy over 2 logical CPU devices trains and agrees with the single-device path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import ROOT, tiny_config, write_colour_images

SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunStore
manager = JobManager(RunStore(sys.argv[1]), max_concurrent=1)
out = {}
for mode in ("none", "mirrored"):
    config = RunConfig.load(sys.argv[2])
    config.distribute = mode
    config.devices = ["/cpu:0", "/cpu:1"] if mode == "mirrored" else None
    run_id = manager.submit(config)
    state = manager.wait(run_id)
    losses = [e["loss"] for e in manager.store.read_events(run_id) if e["type"] == "epoch"]
    replicas = [e.get("replicas") for e in manager.store.read_events(run_id) if e["type"] == "phase" and e.get("replicas")]
    out[mode] = {"state": state.value, "losses": losses, "error": manager.store.get(run_id).error,
                 "accuracy": manager.store.get(run_id).metrics.get("accuracy"), "replicas": replicas}
print(json.dumps(out))
"""


def test_mirrored_on_two_logical_cpus_matches_single_device(tmp_path):
    data = write_colour_images(tmp_path / "data", per_class=10)
    config = tmp_path / "run.json"
    config.write_text(tiny_config(data, backbone="vgg16", epochs=8, seed=3,
                                  head={"units": 16, "dropout": 0.0, "enabled": True}).to_json())
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ws"), str(config)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    single, mirrored = result["none"], result["mirrored"]
    assert single["state"] == mirrored["state"] == "done", (single["error"], mirrored["error"])
    assert mirrored["replicas"] and mirrored["replicas"][0] == 2
    assert mirrored["losses"][-1] < mirrored["losses"][0]
    assert len(single["losses"]) == len(mirrored["losses"])
    # Same data, seed and epochs; the shuffled batch order differs under distribution, so the paths agree at the end.
    a, b = single["losses"][-1], mirrored["losses"][-1]
    assert abs(a - b) < 0.1 * max(1.0, abs(a)), (single["losses"], mirrored["losses"])
    assert single["accuracy"] == mirrored["accuracy"], (single, mirrored)


WORKER = r"""
import json, os, sys, time
index, ports, workspace, config = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4]
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunStore
manager = JobManager(RunStore(workspace), max_concurrent=1, executor="thread")
run_id = manager.submit(RunConfig.load(config))
events = lambda: manager.store.read_events(run_id)
if index == 1:                                 # only this worker is asked to stop, once it has trained 3 epochs
    while sum(e["type"] == "epoch" for e in events()) < 3 and not manager.store.get(run_id).state.finished:
        time.sleep(0.05)
    manager.stop(run_id)
state = manager.wait(run_id, 300)
print(json.dumps({"state": state.value, "error": manager.store.get(run_id).error,
                  "epochs": [e["epoch"] for e in events() if e["type"] == "epoch"],
                  "builds": [e for e in events() if e["type"] == "phase" and e.get("phase") == "build"]}))
"""


def test_tf_config_multiworker_over_two_processes_and_a_stop_seen_by_one_stops_both(tmp_path):
    """The plain TF_CONFIG path (a cluster of one's own): two processes, each a worker of one
    MultiWorkerMirroredStrategy (2 replicas in sync). A Stop asked of worker 1 alone ends both at the same batch
    (tlcore.callbacks.StopVote): without the vote, worker 1 leaves and worker 0's next all-reduce fails or waits."""
    data = write_colour_images(tmp_path / "data", per_class=8)
    config = tmp_path / "run.json"
    config.write_text(tiny_config(data, backbone="vgg16", strategy="scratch", epochs=200).to_json())
    ports = ",".join(str(_free_port()) for _ in range(2))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TLS_WARM_WORKERS": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), ports, str(tmp_path / f"ws{i}"), str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise AssertionError("a worker never finished: the other left it waiting in an all-reduce") from None
        assert proc.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    for out in outs:
        assert out["state"] == "stopped", out["error"]
        assert out["builds"] and out["builds"][0]["replicas"] == 2
        assert out["builds"][0]["distribution"] == "MultiWorkerMirroredStrategy"
    assert len(outs[0]["epochs"]) >= 3 and outs[0]["epochs"] == outs[1]["epochs"], "both stopped after one batch"
    assert len(outs[0]["epochs"]) < 200


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
