"""Each strategy end to end, Stop within one batch, the queue, failures and the NaN guard."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers import tiny_config
from tlcore.callbacks import EventCallback
from tlcore.jobs import JobManager
from tlcore.runs import RunState, RunStore
from tlcore.tf_env import keras


def _epoch_losses(store, run_id, phase=None):
    return [e["loss"] for e in store.read_events(run_id) if e["type"] == "epoch" and phase in (None, e["phase"])]


@pytest.fixture
def manager(workspace):
    m = JobManager(RunStore(workspace), max_concurrent=1)
    yield m
    m.shutdown()


@pytest.mark.parametrize("strategy, backbone, phases", [
    ("feature_extraction", "vgg16", ["head"]),
    ("fine_tune", "vgg16", ["head", "fine-tune"]),
    ("scratch", "mobilenet_025", ["train"]),
])
def test_strategy_trains_with_falling_loss(manager, colour_folder, strategy, backbone, phases):
    extra = {"learning_rate": 1e-3, "epochs": 6} if strategy == "scratch" else {}
    config = tiny_config(colour_folder, strategy=strategy, backbone=backbone, fine_tune_epochs=2,
                         freeze={"mode": "all_but_top", "n": 3, "layer": None}, **extra)
    run_id = manager.submit(config, owner="t")
    assert manager.wait(run_id, 600) == RunState.DONE, manager.store.get(run_id).error
    for phase in phases:
        assert _epoch_losses(manager.store, run_id, phase), f"no {phase} epochs"
    losses = _epoch_losses(manager.store, run_id)
    assert min(losses[1:]) < losses[0]
    folder = manager.store.run_dir(run_id)
    for name in ("config.json", "model.keras", "labels.json", "evaluation.json", "data_report.json", "events.jsonl"):
        assert (folder / name).is_file(), name
    record = manager.store.get(run_id)
    assert record.metrics["accuracy"] is not None and record.metrics["trainable_params"] > 0


def _tiny_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


class _StopAt(keras.callbacks.Callback):
    """Simulates a click on Stop while batch ``at`` of epoch ``epoch`` runs; counts the batches that start."""

    def __init__(self, stop: threading.Event, epoch: int, at: int):
        super().__init__()
        self.stop, self.epoch, self.at, self.started, self._epoch = stop, epoch, at, 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.started += 1
        if self._epoch == self.epoch and batch == self.at:
            self.stop.set()


def test_stop_takes_effect_within_one_batch_and_keeps_best_weights():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 4)).astype("float32"), rng.integers(0, 2, 400)
    model, stop, events = _tiny_model(), threading.Event(), []
    cb = EventCallback(lambda type, **d: events.append((type, d)), stop, phase="head", epoch_offset=0,
                       total_epochs=10, steps=100, monitor="loss")
    probe = _StopAt(stop, epoch=2, at=5)
    model.fit(x, y, batch_size=4, epochs=10, callbacks=[probe, cb], verbose=0, shuffle=False)
    assert probe.started == 2 * 100 + 6, "the batch running at Stop finishes; no further batch starts"
    assert cb.stopped_by_user and cb.epochs_done == 2
    for got, best in zip(model.get_weights(), cb.best_weights):
        np.testing.assert_array_equal(got, best)


def test_stop_through_the_manager_ends_the_run_as_stopped(manager, colour_folder, monkeypatch):
    first_batch = threading.Event()
    original = RunStore.append_event

    def spy(self, run_id, type, **data):
        if type in ("batch", "progress"):
            first_batch.set()
        return original(self, run_id, type, **data)

    monkeypatch.setattr(RunStore, "append_event", spy)
    run_id = manager.submit(tiny_config(colour_folder, backbone="vgg16", epochs=200), owner="t")
    assert first_batch.wait(300)
    manager.stop(run_id)
    assert manager.wait(run_id, 300) == RunState.STOPPED
    assert len(_epoch_losses(manager.store, run_id)) < 200


@pytest.mark.parametrize("strategy, phase", [("feature_extraction", "head"), ("fine_tune", "fine-tune")])
def test_a_stop_after_training_began_keeps_the_model_trained_so_far(manager, colour_folder, monkeypatch, strategy,
                                                                   phase):
    """Stop in the last training phase ends the run as stopped *with* its model: calibrating, saving and evaluating
    it still run. (On worker processes they once re-checked Stop and threw a fine-tuned model away: the browser
    test tests/e2e/test_refresh.py covers that path.)"""
    epochs = {"epochs": 200} if strategy == "feature_extraction" else {"epochs": 1, "fine_tune_epochs": 200}
    original = RunStore.append_event

    def spy(self, rid, type, **data):
        if type == "batch" and data.get("phase") == phase:
            manager.stop(rid)
        return original(self, rid, type, **data)

    monkeypatch.setattr(RunStore, "append_event", spy)
    run_id = manager.submit(tiny_config(colour_folder, strategy=strategy, **epochs), owner="t")
    assert manager.wait(run_id, 300) == RunState.STOPPED
    record = manager.store.get(run_id)
    assert record.metrics.get("accuracy") is not None and record.metrics["epochs"] < 200, record
    assert (manager.store.run_dir(run_id) / "model.keras").is_file()
    assert (manager.store.run_dir(run_id) / "evaluation.json").is_file()


def test_queue_is_fifo_and_a_failing_job_frees_its_slot(manager, colour_folder):
    bad = manager.submit(tiny_config(colour_folder, strategy="no_such_strategy"), owner="t")
    a = manager.submit(tiny_config(colour_folder, backbone="vgg16", epochs=1), owner="t")
    b = manager.submit(tiny_config(colour_folder, backbone="vgg16", epochs=1), owner="t")
    assert manager.queue_position(b) in (1, 2, 3)
    assert manager.wait(b, 600) == RunState.DONE
    store = manager.store
    assert store.get(bad).state == RunState.FAILED
    assert "Unknown strategy 'no_such_strategy'" in store.get(bad).error
    assert store.get(bad).started <= store.get(a).started <= store.get(b).started
    assert manager.queue_position(b) is None and manager.running() == []


def test_stopping_a_queued_run_removes_it_from_the_queue(workspace, colour_folder):
    manager = JobManager(RunStore(workspace), max_concurrent=1)
    manager.shutdown()  # no worker picks anything up: every submitted run stays queued
    run_id = manager.submit(tiny_config(colour_folder), owner="t")
    assert manager.queue_position(run_id) == 1
    manager.stop(run_id)
    assert manager.queue_position(run_id) is None
    assert manager.store.get(run_id).state == RunState.STOPPED


def test_nan_loss_is_caught_with_a_plain_message(manager, colour_folder):
    config = tiny_config(colour_folder, backbone="vgg16", learning_rate=1e35, optimizer="sgd", epochs=3)
    run_id = manager.submit(config, owner="t")
    state = manager.wait(run_id, 300)
    record = manager.store.get(run_id)
    messages = [e.get("message", "") for e in manager.store.read_events(run_id) if e["type"] in ("warning", "failed")]
    assert any("NaN" in m and "learning rate" in m for m in messages), messages
    assert state in (RunState.DONE, RunState.FAILED)
    if state == RunState.FAILED:
        assert "lower the learning rate" in record.error


def test_bad_data_fails_the_run_with_the_data_error(manager, tmp_path):
    (tmp_path / "only_one" ).mkdir()
    run_id = manager.submit(tiny_config(tmp_path), owner="t")
    assert manager.wait(run_id, 120) == RunState.FAILED
    assert "class" in manager.store.get(run_id).error.lower()


def test_feature_cache_with_augmentation_caches_augmented_copies(manager, colour_folder):
    config = tiny_config(colour_folder, backbone="vgg16", epochs=2,
                         augment={"enabled": True, "cache_copies": 2, "rotation": 0.1, "flip": True})
    run_id = manager.submit(config, owner="t")
    assert manager.wait(run_id, 300) == RunState.DONE, manager.store.get(run_id).error
    progress = [e for e in manager.store.read_events(run_id) if e["type"] == "progress"]
    clean = [e for e in progress if e["split"] == "train+val"]
    augmented = [e for e in progress if e["split"] == "train (augmented)"]
    import json

    report = json.loads((manager.store.run_dir(run_id) / "data_report.json").read_text())
    n_train = sum(report["counts"]["train"].values())
    assert n_train == 24
    assert clean[-1]["done"] == clean[-1]["total"]
    assert augmented[-1]["total"] == 2 * -(-n_train // config.batch_size)


def test_event_callback_eta_is_smoothed_and_waits_until_stable():
    """Issue 9: time left jumped (5 h 49 min, then 2 h 28 min). The callback now says nothing ("estimating…")
    until ETA_MIN_SAMPLES batches were timed, never times the first (tracing) batch, and covers only this phase
    when another one follows (the head before fine-tuning)."""
    import threading

    from tlcore.callbacks import EventCallback
    from tlcore.progress import ETA_MIN_SAMPLES
    from tlcore.tf_env import keras

    events = []
    cb = EventCallback(lambda kind, **data: events.append((kind, data)), threading.Event(), phase="head",
                       epoch_offset=0, total_epochs=8, steps=10, batch_interval=0.0)
    cb.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    cb.set_params({"epochs": 3, "steps": 10})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for batch in range(10):
        cb.on_train_batch_begin(batch)
        cb.on_train_batch_end(batch, {"loss": 1.0})
    etas = [data["eta"] for kind, data in events if kind == "batch"]
    assert etas[:ETA_MIN_SAMPLES] == [None] * ETA_MIN_SAMPLES          # batch 1 untimed, then 5 to be stable
    assert all(e is not None and e >= 0 for e in etas[ETA_MIN_SAMPLES + 1:])
    assert {data["eta_scope"] for kind, data in events if kind == "batch"} == {"phase"}   # fine-tuning follows
    cb.on_epoch_end(0, {"loss": 1.0})
    kind, data = events[-1]
    assert kind == "epoch" and data["eta"] is not None and data["epoch"] == 1
