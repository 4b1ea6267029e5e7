"""Hand-written training loops drive the run's EventCallback through keras.callbacks.CallbackList (as model.fit does):
the same events, Stop after the batch that saw it, an epoch whose every batch ran still counts, NaN fails the run."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from tlcore.errors import TLError
from tlcore.strategies._common import loop_callbacks


def _loop(stop_at: int | None = None, steps: int = 4, epochs: int = 2, nan_at: int | None = None):
    events = []
    ctx = SimpleNamespace(stop=threading.Event(), epochs_done=0, total_epochs=epochs, warn=lambda m: None, ran=0)
    ctx.emit = lambda kind, **data: events.append((kind, data))
    callback, callbacks = loop_callbacks(ctx, "adapt", epochs, steps)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for b in range(steps):
            callbacks.on_train_batch_begin(b)
            ctx.ran += 1
            if b == stop_at:
                ctx.stop.set()
            callbacks.on_train_batch_end(b, {"loss": float("nan") if b == nan_at else 1.0, "accuracy": 0.5})
            if callback.halted:
                break
        callback.nan_outcome(ctx.warn)
        callbacks.on_epoch_end(epoch, {"loss": 1.0, "accuracy": 0.5})
        if callback.halted:
            break
    callbacks.on_train_end()
    ctx.epochs_done += callback.epochs_done
    return ctx, events


def test_a_loop_gets_the_fit_events_and_stops_after_the_batch_that_saw_stop():
    ctx, events = _loop(stop_at=1)
    assert events[0] == ("phase", {"phase": "adapt", "epochs": 2})
    assert ctx.ran == 2 and [d["batch"] for k, d in events if k == "batch"][0] == 1    # later ones: every 0.5 s
    assert events[-1] == ("stopped_mid_epoch", {"phase": "adapt", "epoch": 1})
    assert ctx.epochs_done == 0


def test_an_epoch_whose_last_batch_saw_stop_counts_and_a_whole_run_reports_every_epoch():
    ctx, events = _loop(stop_at=3)
    assert [d["epoch"] for k, d in events if k == "epoch"] == [1] and ctx.epochs_done == 1
    ctx, events = _loop()
    epochs = [d for k, d in events if k == "epoch"]
    assert [d["epoch"] for d in epochs] == [1, 2] and ctx.epochs_done == 2
    assert set(epochs[-1]) >= {"phase", "epoch", "total_epochs", "seconds", "eta", "loss", "accuracy"}


def test_a_nan_loss_fails_the_loop_with_the_fix():
    with pytest.raises(TLError, match="lower the learning rate"):
        _loop(nan_at=2)
