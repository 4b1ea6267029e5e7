"""Training from scratch: random weights, everything trainable. The baseline that shows what transfer buys."""
from __future__ import annotations

from ..model import FreezeConfig
from .base import TrainContext, TrainResult


class Scratch:
    name = "scratch"
    title = "Training from scratch"
    description = (
        "The same network starts from random weights and every layer learns from your images alone. With a few "
        "hundred photos it usually does much worse than transfer: run it beside another strategy to see what "
        "the pretrained knowledge is worth."
    )

    def fit(self, ctx: TrainContext) -> TrainResult:
        model = ctx.build(weights="none", freeze_cfg=FreezeConfig(mode="none"), scratch=True)
        ctx.compile(model, ctx.config.learning_rate)
        ctx.train_full(model, ctx.config.epochs, phase="train")
        return TrainResult(model, ctx.classes)
