"""The Keras callback that turns training into events, honours Stop within one batch, and guards against NaN."""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

import numpy as np

from .tf_env import keras

Emit = Callable[..., None]


class EventCallback(keras.callbacks.Callback):
    """Emits batch/epoch events with progress and ETA, stops on request, keeps the best weights."""

    def __init__(self, emit: Emit, stop: threading.Event, *, phase: str, epoch_offset: int, total_epochs: int,
                 steps: int | None, monitor: str = "val_loss", batch_interval: float = 0.5) -> None:
        super().__init__()
        self.emit, self.stop, self.phase = emit, stop, phase
        self.epoch_offset, self.total_epochs, self.steps = epoch_offset, total_epochs, steps
        self.monitor, self.batch_interval = monitor, batch_interval
        self.best_value, self.best_weights = math.inf, None
        self.nan_seen = False
        self.stopped_by_user = False
        self._last_emit = 0.0
        self._t_start = time.time()
        self._epoch_start = time.time()
        self._epoch_times: list[float] = []

    def _check_stop(self) -> None:
        if self.stop.is_set() and not self.model.stop_training:
            self.stopped_by_user = True
            self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._check_stop()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = float(logs.get("loss", np.nan))
        if not math.isfinite(loss):
            self.nan_seen = True
            self.model.stop_training = True
        self._check_stop()
        now = time.time()
        last = self.steps is not None and batch + 1 >= self.steps
        if now - self._last_emit >= self.batch_interval or last:
            self._last_emit = now
            self.emit("batch", phase=self.phase, epoch=self.epoch_offset + self._epoch_index(), batch=batch + 1,
                      steps=self.steps, loss=loss, accuracy=_f(logs.get("accuracy")), eta=self._eta(batch + 1))

    def _epoch_index(self) -> int:
        return len(self._epoch_times) + 1

    def _eta(self, batches_done: int) -> float | None:
        epochs_left = self.total_epochs - (self.epoch_offset + len(self._epoch_times))
        if self._epoch_times:
            per_epoch = float(np.mean(self._epoch_times))
        elif self.steps and batches_done:
            per_epoch = (time.time() - self._epoch_start) / batches_done * self.steps
        else:
            return None
        done_in_epoch = (batches_done / self.steps) if self.steps else 0.0
        return max(0.0, per_epoch * (epochs_left - done_in_epoch))

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped_by_user:  # a partial epoch: neither a data point nor a candidate for the best weights
            self.emit("stopped_mid_epoch", phase=self.phase, epoch=self.epoch_offset + self._epoch_index())
            return
        logs = {k: _f(v) for k, v in (logs or {}).items()}
        self._epoch_times.append(time.time() - self._epoch_start)
        value = logs.get(self.monitor, logs.get("loss"))
        if value is not None and math.isfinite(value) and value < self.best_value:
            self.best_value = value
            self.best_weights = self.model.get_weights()
        if logs.get("loss") is not None and not math.isfinite(logs["loss"]):
            self.nan_seen = True
            self.model.stop_training = True
        self.emit("epoch", phase=self.phase, epoch=self.epoch_offset + len(self._epoch_times),
                  total_epochs=self.total_epochs, seconds=self._epoch_times[-1], eta=self._eta(0), **logs)
        self._check_stop()

    def on_train_end(self, logs=None):
        if (self.stopped_by_user or self.nan_seen) and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def epochs_done(self) -> int:
        return len(self._epoch_times)


def _f(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
