"""Calibrated confidence, "not sure" and "not one of my classes" (tlcore.calibration, issue 15 parts 2 and 3)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import tiny_config, write_colour_images
from tlcore import calibration
from tlcore.metrics import expected_calibration_error, reliability, rescale


def softmax(z):
    z = np.asarray(z, "float64") - np.max(z, axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("probs, y, expected", [
    ([[1.0, 0.0], [0.0, 1.0]], [0, 1], 0.0),                      # sure and right
    ([[0.9, 0.1], [0.9, 0.1]], [1, 1], 0.9),                      # sure and wrong
    ([[0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]], [0, 0, 0, 1, 1], 0.0),   # 60% said, 60% right
    ([[0.5, 0.5]], [0], 0.5),                                     # a tie counts the first class, 50% said, right
])
def test_ece_table(probs, y, expected):
    assert expected_calibration_error(np.array(y), np.array(probs)) == pytest.approx(expected, abs=1e-9)


def test_reliability_bins_count_every_image_once():
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(0, 3, (200, 4)))
    y = rng.integers(0, 4, 200)
    rows = reliability(y, probs)
    assert sum(r["count"] for r in rows) == 200
    assert all(r["low"] <= r["confidence"] <= r["high"] for r in rows)


def test_rescale_is_an_exact_temperature():
    z = np.random.default_rng(1).normal(0, 4, (50, 5))
    assert np.allclose(rescale(softmax(z), 1 / 2.5), softmax(z / 2.5), atol=1e-9)


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.0, 4.0])
def test_fit_temperature_recovers_the_one_that_made_the_labels(true_t):
    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, (4000, 5))
    y = np.array([rng.choice(5, p=p) for p in softmax(z / true_t)])     # labels drawn at temperature true_t
    assert calibration.fit_temperature(softmax(z), y) == pytest.approx(true_t, rel=0.12)


@pytest.mark.parametrize("conf, right, expected", [
    ([0.9, 0.8, 0.7], [1, 1, 1], 0.0),           # all right: never unsure
    ([0.9, 0.8, 0.7, 0.6], [1, 1, 1, 0], 0.7),   # the wrong one is the least confident
    ([0.9, 0.8], [0, 0], 0.9 + 1e-6),            # nothing is precise enough: everything unsure
])
def test_unsure_threshold(conf, right, expected):
    conf = np.array(conf)
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.where(np.array(right) == 1, 0, 1)
    assert calibration.unsure_threshold(probs, y) == pytest.approx(expected)


def test_out_of_distribution_scores_separate_a_far_image():
    rng = np.random.default_rng(3)
    centres = np.eye(8)[:3] * 10
    feats = np.concatenate([c + rng.normal(0, 1, (40, 8)) for c in centres])
    y = np.repeat(np.arange(3), 40)
    means = calibration.class_means(feats, y, 3)
    threshold = calibration.ood_threshold(feats, y, means)
    inside = calibration.ood_scores(centres + rng.normal(0, 1, (3, 8)), means)
    outside = calibration.ood_scores(-np.ones((1, 8)), means)
    assert (inside <= threshold).all() and outside[0] > threshold
    conf = calibration.Confidence(1.0, 0.6, threshold, means)
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.99, 0.005, 0.005]])
    assert conf.statuses(probs, np.array([0.0, 0.0, 1.5])) == ["confident", "unsure", "unknown"]


def _classifier(keras, n_in=6, n_out=3):
    """The app's shape of model: a nested head whose last layer is Dense(softmax)."""
    inputs = keras.Input((n_in,))
    h_in = keras.Input((n_in,))
    head = keras.Model(h_in, keras.layers.Dense(n_out, activation="softmax", name="head_softmax")(
        keras.layers.Dense(4, activation="relu")(h_in)), name="head")
    return keras.Model(inputs, head(keras.layers.Identity(name="pool")(inputs)))


def _prototype_model(keras, n_in=6):
    inputs = keras.Input((n_in,))
    sims = keras.layers.Dense(3, use_bias=False, name="prototypes")(keras.layers.UnitNormalization()(inputs))
    return keras.Model(inputs, keras.layers.Softmax()(keras.layers.Rescaling(10.0, name="temperature")(sims)))


def _two_outputs(keras):
    inputs = keras.Input((6,))
    return keras.Model(inputs, {"a": keras.layers.Dense(2, activation="softmax")(inputs),
                                "b": keras.layers.Dense(3, activation="softmax")(inputs)})


def _not_softmax(keras):
    inputs = keras.Input((6,))
    return keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs))


@pytest.mark.parametrize("build, calibratable", [(_classifier, True), (_prototype_model, True),
                                                  (_two_outputs, False), (_not_softmax, False)])
def test_temperature_inside_the_model_is_exact_and_loads_without_tlcore(tmp_path, build, calibratable):
    from tlcore.tf_env import keras

    keras.utils.set_random_seed(0)
    model = build(keras)
    x = np.random.default_rng(4).normal(0, 1, (16, 6)).astype("float32")
    before = model.predict(x, verbose=0)
    assert calibration.apply_temperature(model, 2.0) is calibratable
    if not calibratable:
        return
    after = model.predict(x, verbose=0)
    assert np.allclose(after, rescale(before, 0.5), atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)   # no tlcore objects
    assert np.allclose(loaded.predict(x, verbose=0), after, atol=1e-6)


def test_calibrate_refuses_too_few_validation_images_with_the_fix():
    info = calibration.calibrate(None, np.full((3, 2), 0.5), np.zeros(3, int))
    assert info["temperature"] == 1.0 and "validation split" in info["note"]


def test_a_run_is_calibrated_and_predicts_with_a_status(tmp_path, workspace):
    """End to end: the runner fits the temperature on validation, the model on disk carries it, the evaluation
    reports both ECEs, and the Predictor answers confident / unsure / unknown with a score."""
    from strategy_helpers import run
    from tlcore.evaluate import evaluate_run
    from tlcore.predict import Predictor, prediction_records

    data = write_colour_images(tmp_path / "c", per_class=30)
    config = tiny_config(data, epochs=4, val_split=0.25, test_split=0.2)
    _, _, state, run_dir = run(workspace, config)
    assert state.value == "done"
    info = json.loads((run_dir / "calibration.json").read_text())
    assert info["fitted_on"] == "validation" and info["n"] >= 10
    assert 0.05 <= info["temperature"] <= 20 and info["nll_after"] <= info["nll_before"] + 1e-9
    assert (run_dir / "ood.npz").exists() and info["ood_threshold"] >= 0
    ev = json.loads((run_dir / "evaluation.json").read_text())
    assert ev["temperature"] == pytest.approx(info["temperature"])
    assert 0 <= ev["ece"] <= 1 and 0 <= ev["ece_uncalibrated"] <= 1 and ev["reliability"]
    again = evaluate_run(run_dir)
    assert again["ece"] == pytest.approx(ev["ece"], abs=1e-6) and again["temperature"] == ev["temperature"]

    predictor = Predictor.from_run(run_dir)
    assert math.isclose(predictor.confidence.temperature, info["temperature"])
    images = sorted((data / "red").glob("*.png"))[:2]
    records = prediction_records(predictor, [str(p) for p in images])
    for r in records:
        assert r["status"] in calibration.STATUSES and r["confidence"] == r["top"][0]["probability"]
        assert r["ood_score"] is not None
    # an image unlike any class (a checkerboard of extremes) lies farther from the classes than a class's own
    from PIL import Image

    odd = np.indices((32, 32)).sum(0) % 2 * 255
    Image.fromarray(np.stack([odd, 255 - odd, odd], -1).astype("uint8")).save(tmp_path / "odd.png")
    far = prediction_records(predictor, [str(tmp_path / "odd.png")])[0]
    assert far["ood_score"] > max(r["ood_score"] for r in records)


def test_test_time_augmentation_averages_the_mirror_image():
    from tlcore.calls import flip_averaged
    from tlcore.tf_env import tf

    x = tf.constant(np.arange(2 * 2 * 3 * 3, dtype="float32").reshape(2, 2, 3, 3))
    left = lambda b: tf.reduce_sum(b[:, :, :1, :], axis=(1, 2, 3))    # noqa: E731 - looks at the left column only
    both = flip_averaged(left)(x).numpy()
    mirrored = tf.reduce_sum(x[:, :, 2:, :], axis=(1, 2, 3)).numpy()
    assert np.allclose(both, (left(x).numpy() + mirrored) / 2)
    as_dict = flip_averaged(lambda b: {"p": left(b)})(x)
    assert np.allclose(as_dict["p"].numpy(), both)
