"""Training from scratch: random weights, everything trainable. The baseline that shows what transfer buys
(catalog: ``scratch``)."""
from __future__ import annotations

from ..model import FreezeConfig
from .base import TrainContext, TrainResult


class Scratch:
    def fit(self, ctx: TrainContext) -> TrainResult:
        model = ctx.build(weights="none", freeze_cfg=FreezeConfig(mode="none"), scratch=True)
        ctx.compile(model, ctx.config.learning_rate)
        ctx.train_full(model, ctx.config.epochs, phase="train")
        return TrainResult(model, ctx.classes)
