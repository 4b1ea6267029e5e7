"""Small pieces the custom-loop strategies (domain adaptation, multi-task, few-shot) share.

- :func:`frozen_trunk`: raw pixels → pooled features of the frozen backbone (the part every one of them reuses).
- :func:`as_split`: a view of a dataset whose samples all sit in one split (the target set has no splits).
- :class:`LoopReporter`: the batch/epoch events, Stop and NaN guard of :class:`tlcore.callbacks.EventCallback`,
  for training loops written by hand instead of ``model.fit``.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ..data import DataReport, Dataset
from ..errors import TLError
from ..model import FreezeConfig, feature_model
from ..tf_env import keras
from .base import TrainContext


def frozen_trunk(ctx: TrainContext) -> keras.Model:
    """The frozen backbone as a model: raw RGB pixels (any size) → resize → preprocess → backbone → pooled."""
    model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
    return feature_model(model)


def as_split(dataset: Dataset, split: str = "train", labels: list[str | None] | None = None,
             classes: list[str] | None = None, keep: list[bool] | None = None) -> Dataset:
    """The samples of ``dataset`` (optionally relabelled / filtered) placed in ``split``, as a new Dataset."""
    samples = []
    for i, s in enumerate(dataset.samples):
        if keep is not None and not keep[i]:
            continue
        label = labels[i] if labels is not None else s.label
        samples.append(dataclasses.replace(s, split=split, label=label, labels=dict(s.labels)))
    return Dataset(dataset.root, list(classes if classes is not None else dataset.classes), samples, DataReport(),
                   dict(dataset.tasks))


def unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero)."""
    x = np.asarray(x, dtype="float32")
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class LoopReporter:
    """Events for a hand-written training loop, shaped like EventCallback's (same keys, same phases)."""

    def __init__(self, ctx: TrainContext, phase: str, epochs: int, steps: int, batch_interval: float = 0.5) -> None:
        self.ctx, self.phase, self.epochs, self.steps = ctx, phase, epochs, steps
        self.batch_interval = batch_interval
        self.epoch_times: list[float] = []
        self._last = 0.0
        self._epoch_start = time.time()
        self.stopped = False
        ctx.emit("phase", phase=phase, epochs=epochs)

    def start_epoch(self) -> None:
        self._epoch_start = time.time()

    def _eta(self, batches_done: int) -> float | None:
        left = self.ctx.total_epochs - self.ctx.epochs_done
        if self.epoch_times:
            per_epoch = float(np.mean(self.epoch_times))
        elif batches_done:
            per_epoch = (time.time() - self._epoch_start) / batches_done * self.steps
        else:
            return None
        return max(0.0, per_epoch * (left - (batches_done / self.steps if self.steps else 0.0)))

    def batch(self, batch: int, loss: float, accuracy: float | None = None) -> bool:
        """Report batch ``batch`` (1-based); True when the user asked to stop (finish this batch, start no other)."""
        if not math.isfinite(loss):
            raise TLError("Training failed because the loss became NaN (not a number): "
                          "lower the learning rate and try again.")
        now = time.time()
        if now - self._last >= self.batch_interval or batch >= self.steps:
            self._last = now
            # The runner's emitter also turns a Stop asked for from another process into ctx.stop here.
            self.ctx.emit("batch", phase=self.phase, epoch=self.ctx.epochs_done + 1, batch=batch, steps=self.steps,
                          loss=float(loss), accuracy=None if accuracy is None else float(accuracy),
                          eta=self._eta(batch))
        self.stopped = self.ctx.stop.is_set()
        return self.stopped

    def stopped_mid_epoch(self) -> None:
        """Stop arrived inside an epoch: like EventCallback, a partial epoch is not reported as a data point."""
        self.ctx.emit("stopped_mid_epoch", phase=self.phase, epoch=self.ctx.epochs_done + 1)

    def epoch(self, **logs) -> None:
        """Close one epoch: emit its metrics (floats or None) and advance the run's epoch counter."""
        self.epoch_times.append(time.time() - self._epoch_start)
        self.ctx.epochs_done += 1
        clean = {k: (None if v is None else float(v)) for k, v in logs.items()}
        self.ctx.emit("epoch", phase=self.phase, epoch=self.ctx.epochs_done, total_epochs=self.ctx.total_epochs,
                      seconds=self.epoch_times[-1], eta=self._eta(0), **clean)
        self.stopped = self.stopped or self.ctx.stop.is_set()
