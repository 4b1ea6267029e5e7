"""Domain adaptation for large gaps: per-domain feature statistics (AdaBN on the pooled features) + self-training.

1. **Domain statistics** (the idea of AdaBN, Li et al. 2016, applied where the head reads): the source features
   are standardised with the source images' mean and spread, the target features with the target images' own.
   The saved model standardises with the target's, as a standard ``Rescaling`` layer.
2. **Self-training** on confident pseudo-labels: a head learns the source; it labels the target images; the most
   confident share of each predicted class joins the training set, and a new head learns; the share grows each
   round (Zou et al. 2018's class-balanced self-training). Target labels are never used, except to score.

Measured on birds5 → pencil sketches and office_caltech amazon → webcam (``benchmarks/bench_strategies.py``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..catalog import DomainAdaptationOptions
from ..config import HeadConfig
from ..model import build_head
from ..callbacks import HaltOnStop
from ..tf_env import keras
from .base import TrainContext, make_optimizer


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) per feature, the variance floored so a constant feature divides by 1e-6, not 0."""
    return x.mean(0).astype("float32"), np.maximum(x.var(0), 1e-12).astype("float32")


def standardise(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean, var = stats
    return ((x - mean) / np.sqrt(var)).astype("float32")


def confident(probs: np.ndarray, share: float) -> np.ndarray:
    """Indices of the ``share`` most confident images of each predicted class (at least one per class found)."""
    labels, conf = probs.argmax(1), probs.max(1)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.extend(idx[np.argsort(-conf[idx], kind="stable")[:max(1, int(len(idx) * share))]])
    return np.sort(np.asarray(keep, dtype="int64"))


def _head(ctx: TrainContext, size: int, opts: DomainAdaptationOptions) -> Any:
    head = build_head(len(ctx.classes), HeadConfig(units=opts.adapter_units, dropout=opts.dropout), size,
                      name="adapted")
    head.compile(optimizer=make_optimizer("adam", 1e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    return head


def self_train(ctx: TrainContext, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, yt: np.ndarray | None,
               val: tuple[np.ndarray, np.ndarray] | None) -> tuple[Any, tuple[np.ndarray, np.ndarray], dict]:
    """(head on standardised features, the target's (mean, variance), summary). Earlier rounds train quietly; the
    last round is the run's reported training (its epochs are the run's epochs)."""
    opts = DomainAdaptationOptions.parse(ctx.config.options)
    source, target = standardiser(xs), standardiser(xt)
    zs, zt = standardise(xs, source), standardise(xt, target)
    zv = (standardise(val[0], source), val[1]) if val is not None else None
    rounds, epochs, batch = max(1, int(opts.rounds)), ctx.config.epochs, ctx.config.batch_size
    keep = np.zeros(0, dtype="int64")
    pseudo = np.zeros(0, dtype="int32")
    history = []
    head = None
    for r in range(rounds + 1):
        keras.utils.set_random_seed(ctx.config.seed + r)
        x = np.concatenate([zs, zt[keep]]) if len(keep) else zs
        y = np.concatenate([ys, pseudo]).astype("int32")
        head = _head(ctx, xs.shape[1], opts)
        if r < rounds:
            ctx.emit("phase", phase="adapt", message=f"Self-training: round {r + 1} of {rounds}")
            head.fit(ctx.arrays(x, y, shuffle=True), epochs=epochs, verbose=0,
                     callbacks=[HaltOnStop(ctx.stop)])
            probs = head.predict(zt, verbose=0, batch_size=256)
            keep = confident(probs, opts.pseudo_share * (r + 1) / rounds)
            pseudo = probs[keep].argmax(1).astype("int32")
            row = {"round": r + 1, "pseudo_labelled": int(len(keep))}
            if yt is not None and (yt >= 0).any():
                known = yt[keep] >= 0
                row["pseudo_label_accuracy"] = float(np.mean(pseudo[known] == yt[keep][known])) if known.any() else None
            history.append(row)
            if ctx.stop.is_set():
                break
        else:
            ctx.fit(head, ctx.arrays(x, y, shuffle=True), epochs=epochs, phase="adapt",
                    validation_data=ctx.arrays(*zv) if zv is not None and len(zv[0]) else None,
                    steps=-(-len(x) // batch), class_weight=None)
    summary: dict = {"method": "self_training", "rounds": history}
    if yt is not None and (yt >= 0).any():
        known = yt >= 0
        summary["target_accuracy"] = float(np.mean(head.predict(zt[known], verbose=0).argmax(1) == yt[known]))
    return head, target, summary




def adapted_model(trunk: Any, head: Any, target: tuple[np.ndarray, np.ndarray]) -> Any:
    """raw pixels → trunk → standardise with the target's statistics → head: standard layers only (a Rescaling with
    constants, which every exporter folds into the graph)."""
    mean, var = target
    scale = 1.0 / np.sqrt(var)
    norm = keras.layers.Rescaling(scale.tolist(), offset=(-mean * scale).tolist(), name="target_statistics")
    return keras.Model(trunk.inputs, head(norm(trunk.outputs[0])), name="classifier")
