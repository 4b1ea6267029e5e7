"""Feature extraction: a frozen backbone and a new head trained on cached features."""
from __future__ import annotations

from ..model import FreezeConfig
from .base import TrainContext, TrainResult


class FeatureExtraction:
    name = "feature_extraction"
    title = "Feature extraction"
    description = (
        "The pretrained backbone stays frozen and only a small new head learns your classes. Each image goes "
        "through the backbone once and its features are cached, so this is the fastest strategy and works well "
        "with a few hundred photos. With augmentation on, a few augmented copies of each training image are "
        "cached too (one more backbone pass per copy), and the head trains on all of them."
    )

    def fit(self, ctx: TrainContext) -> TrainResult:
        if ctx.config.weights == "none" and not ctx.config.backbone_file:
            ctx.warn("A frozen backbone with random weights extracts little: choose ImageNet weights, "
                     "or the 'Training from scratch' strategy.")
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, ctx.config.epochs)
        return TrainResult(model, ctx.classes)
