"""Feature extraction: a frozen backbone and a new head trained on cached features (catalog: ``feature_extraction``)."""
from __future__ import annotations

from ..model import FreezeConfig
from .base import TrainContext, TrainResult


class FeatureExtraction:
    def fit(self, ctx: TrainContext) -> TrainResult:
        if ctx.config.weights == "none" and not ctx.config.backbone_file:
            ctx.warn("A frozen backbone with random weights extracts little: choose ImageNet weights, "
                     "or the 'Training from scratch' strategy.")
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, ctx.config.epochs)
        return TrainResult(model, ctx.classes)
