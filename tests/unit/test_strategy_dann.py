"""Domain adaptation (DANN): gradient reversal, the λ schedule, a synthetic texture shift end to end, Stop, and
office_caltech amazon → webcam with real ImageNet weights."""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from strategy_helpers import (config, epochs, keras_classes, predict_without_tlcore, run, texture_backbone,
                              write_images)
from tlcore.data import load_data
from tlcore.predict import Predictor
from tlcore.runs import RunConfig, RunState
from tlcore.strategies.base import TrainContext
from tlcore.strategies.domain_adaptation import DomainAdaptation, GradientReversal, grl_lambda
from tlcore.tf_env import keras, tf

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def test_gradient_reversal_is_identity_forward_and_scales_gradient_by_minus_lambda():
    layer = GradientReversal(0.0)
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    layer.build(x.shape)
    layer.set_lambda(0.7)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0]]))
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[-0.7, -1.4], [-0.7, -1.4]], rtol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, GradientReversal)


def test_lambda_ramps_as_in_the_paper():
    assert grl_lambda(0.0) == 0.0
    for p in (0.1, 0.5, 1.0):
        assert grl_lambda(p) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1)
    values = [grl_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[-1] > 0.999 and grl_lambda(1.0, scale=0.3) == pytest.approx(0.3 * values[-1])


@pytest.fixture(scope="module")
def texture_shift(tmp_path_factory):
    """Source: clean solid colours. Target: the same colours with heavy noise (a texture-only domain shift)."""
    root = tmp_path_factory.mktemp("dann")
    backbone = texture_backbone(root / "bb.keras")
    source = write_images(root / "source", COLOURS, 20, noise=5)
    target = write_images(root / "target", COLOURS, 20, noise=20, seed=1)   # class folders: labels for scoring only
    return root, backbone, source, target


@pytest.fixture(scope="module")
def dann_run(texture_shift):
    root, backbone, source, target = texture_shift
    return run(root / "ws", config(source, backbone, strategy="domain_adaptation", target_data=str(target), epochs=30,
                                   options={"method": "dann"}))


def test_dann_run_reports_adaptation_metrics_every_epoch(dann_run):
    store, run_id, state, run_dir = dann_run
    assert state == RunState.DONE, store.get(run_id).error
    history = epochs(store, run_id, "adapt")
    assert len(history) == 30
    for key in ("loss", "accuracy", "val_accuracy", "target_accuracy", "domain_accuracy", "lambda"):
        assert all(e.get(key) is not None for e in history), key
    lambdas = [e["lambda"] for e in history]
    assert lambdas == sorted(lambdas) and lambdas[0] < 0.5 < lambdas[-1]
    assert history[-1]["accuracy"] == 1.0 and history[-1]["target_accuracy"] == 1.0


def test_dann_drives_the_discriminator_to_chance(dann_run):
    """Source-only features are perfectly separable by domain; DANN's features end up indistinguishable."""
    store, run_id, state, run_dir = dann_run
    baseline = [e for e in store.read_events(run_id) if e["type"] == "baseline"][-1]
    assert baseline["domain_accuracy"] >= 0.95
    history = epochs(store, run_id, "adapt")
    assert max(e["domain_accuracy"] for e in history) >= 0.8      # it could tell them apart on the way...
    assert history[-1]["domain_accuracy"] <= 0.6                   # ...and no longer can


def test_dann_evaluation_scores_source_test_and_target(dann_run):
    store, run_id, state, run_dir = dann_run
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["accuracy"] == 1.0 and evaluation["target_accuracy"] == 1.0
    assert evaluation["target"]["n"] == 60 and len(evaluation["target"]["per_class"]) == 3
    assert evaluation["source_only_target_accuracy"] is not None
    summary = evaluation["domain_adaptation"]
    assert summary["target_images"] == 60 and summary["target_labelled"] == 60


def test_saved_model_is_the_inference_part_only(dann_run, tmp_path):
    store, run_id, state, run_dir = dann_run
    names = keras_classes(run_dir / "model.keras")
    assert not any("GradientReversal" in n or "tlcore" in n for n in names)
    predictor = Predictor.from_run(run_dir)
    assert {layer.name for layer in predictor.model.layers} >= {"adapter", "predictions"}
    images = predictor.prepare([p for p in sorted((run_dir.parent.parent.parent / "target").rglob("*.png"))[:6]])
    expected = predictor.probabilities(images)
    np.testing.assert_allclose(predict_without_tlcore(run_dir / "model.keras", images), expected, atol=1e-5)


def test_embedding_map_shows_both_domains_before_and_after_adaptation(dann_run):
    from tlcore.embed import run_embedding_map, stage_model

    store, run_id, state, run_dir = dann_run
    model = Predictor.from_run(run_dir).model
    assert stage_model(model, "after").output.shape[-1] == model.get_layer("adapter").units
    for stage in ("before", "after"):
        points = run_embedding_map(run_dir, stage=stage)
        assert {p["domain"] for p in points} == {"source", "target"}
        assert sum(p["domain"] == "target" for p in points) == 60


def test_stop_ends_the_adaptation_within_one_batch(texture_shift, tmp_path):
    root, backbone, source, target = texture_shift
    cfg = config(source, backbone, strategy="domain_adaptation", target_data=str(target), epochs=50,
                 options={"baseline": False, "method": "dann"})
    stop, events = threading.Event(), []

    def emit(type, **data):
        events.append((type, data))
        if type == "batch" and data.get("phase") == "adapt":
            stop.set()

    ctx = TrainContext(cfg, load_data(source, tmp_path / "src", val_split=0.2, test_split=0.2), tmp_path, emit, stop,
                       target=load_data(target, tmp_path / "tgt", val_split=0, test_split=0, unlabelled=True))
    result = DomainAdaptation().fit(ctx)
    assert [d["batch"] for t, d in events if t == "batch" and d["phase"] == "adapt"] == [1]
    assert not [d for t, d in events if t == "epoch"] and ("stopped_mid_epoch" in [t for t, _ in events])
    assert result.model.output.shape[-1] == 3


def test_domain_adaptation_needs_target_images(texture_shift, tmp_path):
    root, backbone, source, target = texture_shift
    store, run_id, state, _ = run(tmp_path / "ws", config(source, backbone, strategy="domain_adaptation"))
    assert state == RunState.FAILED and "target" in store.get(run_id).error


def test_office_caltech_amazon_to_webcam(shared_dir, imagenet_mobilenet, tmp_path):
    """Real benchmark: labelled amazon product photos → unlabelled webcam shots, MobileNet α=0.25 ImageNet features.
    Webcam labels (its class folders) are used only to score. DANN must not do worse than source-only."""
    office = shared_dir / "datasets" / "office_caltech"
    if not (office / "amazon").is_dir() or not (office / "webcam").is_dir():
        pytest.skip(f"needs {office}/amazon and /webcam, absent here")
    cfg = RunConfig(data=str(office / "amazon"), target_data=str(office / "webcam"), strategy="domain_adaptation",
                    backbone="mobilenet_025", weights="imagenet", image_size=224, epochs=20, batch_size=32,
                    early_stopping=0, options={"method": "dann"})
    store, run_id, state, run_dir = run(tmp_path / "ws", cfg)
    assert state == RunState.DONE, store.get(run_id).error
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    dann, source_only = evaluation["target_accuracy"], evaluation["source_only_target_accuracy"]
    summary = evaluation["domain_adaptation"]
    print(f"office_caltech amazon→webcam: source-only {source_only:.3f}, DANN {dann:.3f}; domain accuracy "
          f"{summary['source_only']['domain_accuracy']:.3f} → {summary['dann']['domain_accuracy']:.3f}")
    assert dann >= source_only
    assert summary["dann"]["domain_accuracy"] < summary["source_only"]["domain_accuracy"] - 0.05
    assert evaluation["accuracy"] >= 0.8          # amazon test split
    assert evaluation["target"]["n"] == 295


def test_self_training_adapts_with_target_statistics_and_saves_standard_layers(texture_shift):
    """options["method"] = "self_training": per-domain feature statistics and rounds of pseudo-labels; the saved
    model standardises with the target's statistics in a Rescaling layer and loads without tlcore."""
    root, backbone, source, target = texture_shift
    store, run_id, state, run_dir = run(root / "ws_st", config(source, backbone, strategy="domain_adaptation",
                                                               target_data=str(target), epochs=8,
                                                               options={"method": "self_training", "rounds": 2}))
    assert state.value == "done", store.get(run_id).error
    ev = json.loads((run_dir / "evaluation.json").read_text())
    summary = ev["domain_adaptation"]
    assert summary["method"] == "self_training" and len(summary["self_training"]["rounds"]) == 2
    assert summary["self_training"]["rounds"][1]["pseudo_labelled"] > summary["self_training"]["rounds"][0]["pseudo_labelled"]
    assert ev["target_accuracy"] is not None and ev["source_only_target_accuracy"] is not None
    names = keras_classes(run_dir / "model.keras")
    assert "Rescaling" in names and not any("tlcore" in n for n in names)
    assert "target_statistics" in {layer.name for layer in Predictor.from_run(run_dir).model.layers}
    images = Predictor.from_run(run_dir).prepare(sorted(Path(target).rglob("*.png"))[:4])
    np.testing.assert_allclose(predict_without_tlcore(run_dir / "model.keras", images),
                               Predictor.from_run(run_dir).probabilities(images), atol=1e-5)


@pytest.mark.parametrize("options, message", [({"method": "coral"}, "dann or self_training"),
                                              ({"method": "self_training", "rounds": 0}, "rounds"),
                                              ({"pseudo_share": 1.5}, "pseudo_share")])
def test_bad_adaptation_options_name_the_fix(tmp_path, options, message):
    from tlcore.errors import ConfigError
    from tlcore.runs import RunConfig

    with pytest.raises(ConfigError, match=message):
        RunConfig(data=str(tmp_path), strategy="domain_adaptation", options=options).validate()
