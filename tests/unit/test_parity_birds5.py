"""The parity matrix on real data: MobileNet α=0.25 (ImageNet weights) trained on birds5, every format exported
and run in its own runtime on the test split (needs ../shared; skips without it)."""
from __future__ import annotations

import pytest

from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunState, RunStore


@pytest.fixture(scope="module")
def birds_run(tmp_path_factory, birds5, imagenet_mobilenet):
    manager = JobManager(RunStore(tmp_path_factory.mktemp("paritybirds")), max_concurrent=1)
    run_id = manager.submit(RunConfig(data=str(birds5), backbone="mobilenet_025", strategy="feature_extraction",
                                      epochs=3, seed=0), owner="real")
    try:
        assert manager.wait(run_id, 900) == RunState.DONE, manager.store.get(run_id).error
        yield manager.store.run_dir(run_id)
    finally:
        manager.shutdown()


def test_every_format_agrees_with_the_studio_on_birds5(birds_run):
    from tlcore.parity import parity_matrix

    result = parity_matrix(birds_run)
    rows = {row["format"]: row for row in result["rows"]}
    assert result["split"] == "test" and result["n"] >= 25 and result["ok"] is True, result
    assert {"keras", "savedmodel", "tflite", "tflite-float16", "tflite-int8", "onnx"} <= set(rows)
    for name in ("keras", "savedmodel", "tflite", "onnx"):
        assert rows[name]["agree"] == 1.0 and rows[name]["max_abs_diff"] < 1e-4, rows[name]
    assert rows["tflite-float16"]["max_abs_diff"] < 0.1
    int8 = rows["tflite-int8"]
    assert int8["agree"] >= 0.97 and int8["accuracy"] >= result["reference_accuracy"] - 0.05, int8
