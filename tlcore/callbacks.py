"""The Keras callback that turns training into events, honours Stop within one batch, and guards against NaN.

It drives both ``model.fit`` (``TrainContext.fit``) and the hand-written loops of the custom strategies, which call
it through a :class:`keras.callbacks.CallbackList` as Keras documents for custom training loops
(``tlcore.strategies._common.loop_callbacks``). The time left is computed here, from :mod:`tlcore.progress`'s
smoothing; the NaN policy is :meth:`EventCallback.nan_outcome`.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

import numpy as np

from .errors import TLError
from .progress import ETA_MIN_SAMPLES, eta_estimate, smooth_rate
from .tf_env import keras, tf

Emit = Callable[..., None]
NAN_FAILED = "Training failed because the loss became NaN (not a number): lower the learning rate and try again."
NAN_KEPT_BEST = ("The loss became NaN, so training stopped early and kept the best weights so far; "
                 "a lower learning rate usually fixes this.")


class EventCallback(keras.callbacks.Callback):
    """Emits batch/epoch events with progress and ETA, stops on request, keeps the best weights.

    ``keep_best=False`` (the hand-written loops) skips copying the weights at each epoch and restoring them after a
    Stop or a NaN loss: the model keeps the weights it has.
    """

    def __init__(self, emit: Emit, stop: threading.Event, *, phase: str, epoch_offset: int, total_epochs: int,
                 steps: int | None, monitor: str = "val_loss", batch_interval: float = 0.5,
                 keep_best: bool = True) -> None:
        super().__init__()
        self.emit, self.stop, self.phase = emit, stop, phase
        self.epoch_offset, self.total_epochs, self.steps = epoch_offset, total_epochs, steps
        self.monitor, self.batch_interval, self.keep_best = monitor, batch_interval, keep_best
        self.best_value, self.best_weights = math.inf, None
        self.nan_seen = False
        self.stopped_by_user = False
        self._last_emit = 0.0
        self._t_start = time.time()
        self._epoch_start = time.time()
        self._epoch_times: list[float] = []
        self._batch_start: float | None = None
        self._rate: float | None = None          # smoothed seconds per training batch
        self._overhead: float | None = None      # smoothed seconds per epoch outside the batches (validation)
        self._samples = 0                        # batches timed so far
        self._batch_seconds = 0.0                # time spent in this epoch's batches
        self._epoch_batches = 0                  # batches finished in this epoch
        self._first_batch = True                 # the very first batch includes tracing: never timed
        self._vote: Any = None                   # StopVote over several workers, else False (at the first check)

    def _halt(self) -> None:
        if self.model is not None:
            self.model.stop_training = True

    def _check_stop(self) -> None:
        asked = self.stop.is_set()
        if self._vote is None:
            strategy = getattr(self.model, "distribute_strategy", None)
            self._vote = StopVote(strategy) if several_workers(strategy) else False
        if self._vote:                             # every worker votes at the same batch: they stop together
            asked = self._vote(asked)
            if asked:
                self.stop.set()                    # the run ends as stopped on every worker, not only the asker
        if asked and not self.stopped_by_user and not getattr(self.model, "stop_training", False):
            self.stopped_by_user = True
            self._halt()

    @property
    def halted(self) -> bool:
        """True once training should end (Stop was asked for, or the loss became NaN): a hand-written loop checks
        it after each batch, as ``fit`` checks ``model.stop_training``."""
        return self.stopped_by_user or self.nan_seen

    def nan_outcome(self, warn: Callable[[str], None]) -> None:
        """After training: a NaN loss fails the run (TLError naming the fix) unless best weights were kept and
        restored, which only earns a warning."""
        if not self.nan_seen:
            return
        if self.best_weights is None:
            raise TLError(NAN_FAILED)
        warn(NAN_KEPT_BEST)

    def on_train_begin(self, logs=None):
        self._check_stop()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._batch_seconds = 0.0
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = float(logs.get("loss", np.nan))
        if not math.isfinite(loss):
            self.nan_seen = True
            self._halt()
        # ``batch`` is the last batch of this call: with steps_per_execution > 1 one call runs several batches
        done = batch + 1 if self.steps is None else min(batch + 1, self.steps)
        ran = max(1, done - self._epoch_batches)
        self._epoch_batches += ran
        now = time.time()
        if self._batch_start is not None:
            seconds = now - self._batch_start
            self._batch_seconds += seconds
            if self._first_batch:
                self._first_batch = False
            else:
                self._rate = smooth_rate(self._rate, seconds / ran)
                self._samples += ran
        last = self.steps is not None and done >= self.steps
        if now - self._last_emit >= self.batch_interval or last:
            self._last_emit = now
            self.emit("batch", phase=self.phase, epoch=self.epoch_offset + self._epoch_index(), batch=done,
                      steps=self.steps, loss=loss, accuracy=_f(logs.get("accuracy")), eta=self._eta(done),
                      eta_scope=self.eta_scope)
        self._check_stop()   # after the event: the runner's emitter turns a Stop from another process into ``stop``

    def _epoch_index(self) -> int:
        return len(self._epoch_times) + 1

    def _phase_epochs(self) -> int:
        """Epochs of this fit (this phase); a later phase (fine-tuning after the head) is estimated when it starts."""
        epochs = (self.params or {}).get("epochs")
        return int(epochs) if epochs else self.total_epochs - self.epoch_offset

    def _eta(self, batches_done: int) -> float | None:
        """Seconds left in this phase, from smoothed times per batch (None until they are stable)."""
        steps = self.steps or (self.params or {}).get("steps")
        if not steps:
            return None
        epochs_left = self._phase_epochs() - len(self._epoch_times)     # counting the one in progress
        if batches_done == 0:                                           # between epochs
            epochs_left = max(0, epochs_left)
            batches_left = steps * epochs_left
        else:
            batches_left = steps * max(0, epochs_left - 1) + max(0, steps - batches_done)
        samples = self._samples if not self._epoch_times else max(self._samples, ETA_MIN_SAMPLES)
        eta = eta_estimate(self._rate, samples, batches_left)
        if eta is not None and self._overhead:
            eta += self._overhead * max(0, epochs_left)
        return eta

    @property
    def eta_scope(self) -> str:
        """"phase" when another training phase follows this one, else "run"."""
        return "phase" if self.epoch_offset + self._phase_epochs() < self.total_epochs else "run"

    def _partial_epoch(self) -> bool:
        """Stop came before every batch of this epoch ran (an epoch whose last batch saw Stop still counts)."""
        steps = self.steps or (self.params or {}).get("steps")
        return self.stopped_by_user and (not steps or self._epoch_batches < steps)

    def on_epoch_end(self, epoch, logs=None):
        if self._partial_epoch():  # a partial epoch: neither a data point nor a candidate for the best weights
            self.emit("stopped_mid_epoch", phase=self.phase, epoch=self.epoch_offset + self._epoch_index())
            return
        logs = {k: _f(v) for k, v in (logs or {}).items()}
        self._epoch_times.append(time.time() - self._epoch_start)
        if self.steps is None and (self.params or {}).get("steps") is None and self._samples:
            self.steps = self._samples + (1 if len(self._epoch_times) == 1 else 0)   # counted in the first epoch
        self._overhead = smooth_rate(self._overhead, max(0.0, self._epoch_times[-1] - self._batch_seconds), 0.5)
        value = logs.get(self.monitor, logs.get("loss"))
        if self.keep_best and value is not None and math.isfinite(value) and value < self.best_value:
            self.best_value = value
            self.best_weights = self.model.get_weights()
        if logs.get("loss") is not None and not math.isfinite(logs["loss"]):
            self.nan_seen = True
            self._halt()
        self.emit("epoch", phase=self.phase, epoch=self.epoch_offset + len(self._epoch_times),
                  total_epochs=self.total_epochs, seconds=self._epoch_times[-1], eta=self._eta(0),
                  eta_scope=self.eta_scope, **logs)
        self._check_stop()

    def on_train_end(self, logs=None):
        if (self.stopped_by_user or self.nan_seen) and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def epochs_done(self) -> int:
        return len(self._epoch_times)


def several_workers(strategy: Any) -> bool:
    """True when ``strategy`` trains over several workers (MultiWorkerMirroredStrategy with a TF_CONFIG cluster)."""
    try:
        resolver = getattr(strategy, "cluster_resolver", None)
    except NotImplementedError:
        resolver = None
    if resolver is None:
        return False
    spec = resolver.cluster_spec().as_dict()
    return len(spec.get("worker", [])) + len(spec.get("chief", [])) > 1


class StopVote:
    """Or's a flag over every worker of ``strategy`` with one all-reduce, so each worker must vote at the same
    point of training: a Stop seen by one worker after batch 7 stops them all after batch 7 (alone, that worker
    would leave while the others waited for it in the next batch's all-reduce)."""

    def __init__(self, strategy: Any) -> None:
        @tf.function
        def votes(flag):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(flag)), axis=None)

        self._votes = votes

    def __call__(self, flag: bool) -> bool:
        """True when this worker's ``flag`` or any other worker's is."""
        return float(self._votes(tf.constant(1.0 if flag else 0.0))) > 0


def _f(value) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class HaltOnStop(keras.callbacks.Callback):
    """For a quiet ``fit`` (a search trial, a self-training round): the run's Stop ends it within a batch."""

    def __init__(self, stop: Any) -> None:
        super().__init__()
        self.stop = stop

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.stop.is_set():
            self.model.stop_training = True
