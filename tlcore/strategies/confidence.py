"""After training, before saving: calibrate the model's confidence and learn where its classes lie.

The runner calls :func:`fit_confidence` on every run's result; it is strategy-independent. The validation images go
through the trained model once (to fit the temperature and the "not sure" threshold), and the training images'
pooled features come from the feature store (a hit for every frozen-backbone strategy) to place the class
prototypes of the "not one of my classes" test (:mod:`tlcore.calibration`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import calibration
from ..calls import over_files
from .base import TrainContext, TrainResult


def fit_confidence(ctx: TrainContext, result: TrainResult) -> tuple[dict, np.ndarray | None, float | None]:
    """(calibration.json's fields, class means, distance threshold) for ``result``; the model's final Dense layer
    is rescaled in place by the fitted temperature. Multi-task models are left as trained (one note says so)."""
    model = result.model
    if isinstance(model.output, (dict, list, tuple)):
        return ({"temperature": 1.0, "unsure_below": 0.0,
                 "note": "A multi-task model's confidence is not calibrated yet: each label column is as trained."},
                None, None)
    index = {c: i for i, c in enumerate(result.classes)}
    val = [s for s in ctx.dataset.split("val") if s.label in index]
    probs = y = None
    if len(val) >= calibration.MIN_CALIBRATION_IMAGES:
        probs = np.asarray(over_files(model, [s.path for s in val], ctx.image_size, ctx.config.batch_size))
        y = np.array([index[s.label] for s in val])
    info = calibration.calibrate(model, probs, y)
    means, threshold = _prototypes(ctx, model, result.classes, index)
    return info, means, threshold


def _prototypes(ctx: TrainContext, model: Any, classes: list[str],
                index: dict[str, int]) -> tuple[np.ndarray | None, float | None]:
    """Class means of the training images' pooled features and the in-class distance threshold (None, None for a
    model without a ``pool`` layer or with fewer than two training images per class on average)."""
    names = {layer.name for layer in model.layers}
    train = [s for s in ctx.dataset.split("train") if s.label in index]
    if "pool" not in names or len(train) < 2 * len(classes):
        return None, None
    features = ctx.features_of(model, [s.path for s in train], label="prototypes")
    y = np.array([index[s.label] for s in train])
    means = calibration.class_means(features, y, len(classes))
    return means, calibration.ood_threshold(features, y, means)
