"""What the Train page says about a run (issue 9): smoothed time left, the real epoch after a Stop, the run's
stages, the plain "no better than guessing" verdict, and comparison cells of runs that have no result yet.

Pure functions: no TensorFlow, no streamlit."""
from __future__ import annotations

import pytest

from tlcore.progress import ETA_MIN_SAMPLES, eta_estimate, smooth_rate, stages, status_line, summarize
from tlcore.results import chance_verdict, final_accuracy, table_rows


@pytest.mark.parametrize("previous, sample, alpha, expected", [
    (None, 2.0, 0.2, 2.0),            # the first sample is the estimate
    (1.0, 1.0, 0.2, 1.0),             # steady batches: steady estimate
    (1.0, 11.0, 0.2, 3.0),            # one slow batch (a garbage collection) moves it by a fifth only
    (10.0, 0.0, 0.5, 5.0),
    (4.0, 2.0, 1.0, 2.0),             # alpha 1: no smoothing
])
def test_smooth_rate_is_an_exponential_moving_average(previous, sample, alpha, expected):
    assert smooth_rate(previous, sample, alpha) == pytest.approx(expected)


@pytest.mark.parametrize("rate, samples, left, expected", [
    (None, 10, 100, None),                      # nothing timed yet
    (0.5, 0, 100, None),
    (0.5, ETA_MIN_SAMPLES - 1, 100, None),      # not stable yet: "estimating…"
    (0.5, ETA_MIN_SAMPLES, 100, 50.0),
    (0.5, 50, 0, 0.0),                          # nothing left
    (0.5, 50, -3, 0.0),                         # never negative
])
def test_eta_estimate_waits_for_enough_batches(rate, samples, left, expected):
    assert eta_estimate(rate, samples, left) == (None if expected is None else pytest.approx(expected))


def test_smoothing_damps_the_jumps_the_issue_saw():
    """A slow first batch (tracing) then steady ones: the raw per-batch ETA jumps by hours, the smoothed one not."""
    batch_times = [0.1] * 6 + [3.0] + [0.1] * 6         # one hiccup in the middle
    rate, samples, etas = None, 0, []
    for i, seconds in enumerate(batch_times):
        rate, samples = smooth_rate(rate, seconds), samples + 1
        etas.append(eta_estimate(rate, samples, 1000 - i))
    shown = [e for e in etas if e is not None]
    assert etas[:ETA_MIN_SAMPLES - 1] == [None] * (ETA_MIN_SAMPLES - 1)
    raw_jump = 3.0 / 0.1                                 # what a per-batch estimate would do
    assert max(shown) / min(shown) < raw_jump / 3


def _events(*extra):
    return [{"type": "state", "state": "running", "t": 0.0}, {"type": "phase", "phase": "data"},
            {"type": "phase", "phase": "build"}, *extra]


def test_status_says_estimating_until_the_time_left_is_stable():
    p = summarize(_events({"type": "phase", "phase": "train"},
                          {"type": "batch", "phase": "train", "epoch": 1, "batch": 2, "steps": 10}), 15)
    assert status_line(p) == "Training every layer · epoch 1 of 15 · batch 2 of 10 · estimating the time left…"
    p = summarize(_events({"type": "phase", "phase": "head"},
                          {"type": "batch", "phase": "head", "epoch": 1, "batch": 8, "steps": 10, "eta": 130,
                           "eta_scope": "phase"}), 15)
    assert status_line(p).endswith("about 2 min left in this phase")


def test_the_first_batch_of_a_phase_says_it_is_being_prepared():
    p = summarize(_events({"type": "phase", "phase": "train", "epochs": 10}), 10)
    assert status_line(p).startswith("Training every layer · epoch 1 of 10 · preparing the first batch")
    p = summarize(_events({"type": "phase", "phase": "head"},
                          {"type": "epoch", "phase": "head", "epoch": 2, "total_epochs": 5, "loss": 1.0},
                          {"type": "phase", "phase": "fine-tune"}), 5)
    assert "epoch 3 of 5 · preparing the first batch" in status_line(p)


def test_after_a_stop_in_epoch_one_the_page_shows_the_real_epoch():
    p = summarize(_events({"type": "phase", "phase": "train"},
                          {"type": "batch", "phase": "train", "epoch": 1, "batch": 3, "steps": 10},
                          {"type": "stopped_mid_epoch", "phase": "train", "epoch": 1},
                          {"type": "phase", "phase": "save", "message": "Saving the model"}), 15)
    assert status_line(p) == "Saving the model"
    assert "epoch 2" not in status_line(p)
    p = summarize(_events({"type": "phase", "phase": "train"},
                          {"type": "epoch", "phase": "train", "epoch": 1, "total_epochs": 15, "loss": 1.0},
                          {"type": "phase", "phase": "save", "message": "Saving the model"}), 15)
    assert status_line(p) == "Saving the model · after 1 epoch"


def test_stages_follow_the_runs_events():
    p = summarize([{"type": "state", "state": "running"},
                   {"type": "phase", "phase": "load", "message": "Loading TensorFlow"},
                   {"type": "phase", "phase": "data"}, {"type": "phase", "phase": "build"},
                   {"type": "progress", "phase": "features", "done": 4, "total": 12}], 10)
    assert stages(p)[:4] == [("Loading TensorFlow", "done"), ("Reading the images", "done"),
                             ("Building the model", "done"), ("Computing features: 4 of 12 batches", "now")]
    assert ("Training", "next") in stages(p)
    p = summarize(_events({"type": "phase", "phase": "train"},
                          {"type": "batch", "phase": "train", "epoch": 3, "batch": 1, "steps": 5}), 10)
    labels = dict(stages(p))
    assert labels["Training: epoch 3 of 10"] == "now"
    assert "Loading TensorFlow" not in labels and "Computing features" not in labels   # skipped stages: left out
    p = summarize(_events(), 10)
    assert "Computing features" in dict(stages(p)) and "Computing features" not in dict(stages(p, "scratch"))


@pytest.mark.parametrize("accuracy, classes, weights, strategy, warns", [
    (0.33, 3, "none", "scratch", True),          # the issue's case: "triangle" for everything
    (0.38, 3, "none", "scratch", True),          # within 5 points of 1/3
    (0.10, 3, "imagenet", "feature_extraction", True),   # below chance is no better
    (0.39, 3, "imagenet", "feature_extraction", False),  # 39 % > 33.3 + 5
    (0.55, 2, "imagenet", "fine_tune", True),
    (0.56, 2, "imagenet", "fine_tune", False),
    (0.95, 5, "none", "scratch", False),
    (None, 3, "none", "scratch", False),         # no test images: nothing to judge
    (0.3, 1, "none", "scratch", False),          # one class: chance is meaningless
    (0.3, None, "none", "scratch", False),
    (float("nan"), 3, "imagenet", "feature_extraction", False),
    ("x", 3, "imagenet", "feature_extraction", False),
])
def test_chance_verdict(accuracy, classes, weights, strategy, warns):
    note = chance_verdict(accuracy, classes, weights=weights, strategy=strategy, n_train=42)
    assert (note is not None) == warns
    if warns:
        assert "no better than guessing" in note and f"{1 / classes:.0%}" in note and "Fix:" in note


def test_chance_verdict_names_the_cause_and_the_fix():
    scratch = chance_verdict(0.33, 3, weights="none", strategy="scratch", n_train=42)
    assert "random weights" in scratch and "42 training images" in scratch and "ImageNet" in scratch
    assert "feature extraction" in scratch
    frozen_random = chance_verdict(0.33, 3, weights="none", strategy="feature_extraction")
    assert "random weights" in frozen_random and "from scratch" not in frozen_random and "ImageNet" in frozen_random
    transfer = chance_verdict(0.33, 3, weights="imagenet", strategy="fine_tune")
    assert "random weights" not in transfer and "more epochs" in transfer and "lower learning rate" in transfer
    assert "validation images" in chance_verdict(0.3, 3, weights="none", strategy="scratch", which="validation")


@pytest.mark.parametrize("metrics, epochs, expected", [
    ({"accuracy": 0.8}, [{"val_accuracy": 0.4}], (0.8, "test")),
    ({}, [{"val_accuracy": 0.4}, {"val_accuracy": 0.5}], (0.5, "validation")),
    ({}, [{"val_accuracy": 0.4}, {"val_accuracy": None}], (0.4, "validation")),
    ({}, [], (None, "test")),
])
def test_final_accuracy_falls_back_to_validation(metrics, epochs, expected):
    assert final_accuracy(metrics, epochs) == expected


def test_comparison_cells_of_pending_runs_say_queued_or_training():
    base = {"accuracy": None, "macro F1": None, "epochs": None, "trainable params": None, "time": ""}
    rows = [{**base, "state": "done", "accuracy": 0.875, "macro F1": 0.8512, "epochs": 3,
             "trainable params": 12345, "time": "1 min 2 s"},
            {**base, "state": "running"}, {**base, "state": "queued"}, {**base, "state": "failed"}]
    shown = table_rows(rows)
    assert [shown[0][k] for k in ("accuracy", "macro F1", "epochs", "trainable params", "time")] == [
        "87.5%", "0.85", "3", "12,345", "1 min 2 s"]
    assert {shown[1][k] for k in ("accuracy", "macro F1", "epochs", "trainable params", "time")} == {"training"}
    assert {shown[2][k] for k in ("accuracy", "macro F1", "epochs", "trainable params", "time")} == {"queued"}
    assert shown[3]["accuracy"] == "—"
    assert not any("None" in str(v) for row in shown for v in row.values())
    assert rows[1]["accuracy"] is None                   # the numbers themselves are untouched (CLI, exports)
