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
