"""Small pieces the custom-loop strategies (domain adaptation, multi-task, few-shot) share.

- :func:`frozen_trunk`: raw pixels → pooled features of the frozen backbone (the part every one of them reuses).
- :func:`as_split`: a view of a dataset whose samples all sit in one split (the target set has no splits).
- :func:`loop_callbacks`: :class:`tlcore.callbacks.EventCallback` (batch/epoch events, Stop, NaN guard, time left)
  in a ``keras.callbacks.CallbackList``, for training loops written by hand instead of ``model.fit``.
"""
from __future__ import annotations

import dataclasses


from ..callbacks import EventCallback
from ..data import DataReport, Dataset
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



def loop_callbacks(ctx: TrainContext, phase: str, epochs: int, steps: int,
                   model: keras.Model | None = None) -> tuple[EventCallback, keras.callbacks.CallbackList]:
    """The run's :class:`EventCallback` in a :class:`keras.callbacks.CallbackList`, for a training loop written by
    hand, as Keras documents for custom loops: the loop calls ``on_train_begin``, ``on_epoch_begin``,
    ``on_train_batch_begin``/``_end`` (logs ``loss``, ``accuracy``), ``on_epoch_end`` (the epoch's metrics) and
    ``on_train_end``, and ends a batch loop when ``callback.halted``. The callback emits the same phase / batch /
    epoch / stopped_mid_epoch events as ``model.fit`` runs, with the same Stop, NaN guard and time left.

    After the loop the caller adds ``callback.epochs_done`` to ``ctx.epochs_done``; on a NaN loss it calls
    ``callback.nan_outcome(ctx.warn)``, which fails the run (a hand-written loop keeps no best weights).
    """
    ctx.emit("phase", phase=phase, epochs=epochs)
    callback = EventCallback(ctx.emit, ctx.stop, phase=phase, epoch_offset=ctx.epochs_done,
                             total_epochs=ctx.total_epochs, steps=steps, monitor="loss", keep_best=False)
    return callback, keras.callbacks.CallbackList([callback], model=model, epochs=epochs, steps=steps, verbose=0)
