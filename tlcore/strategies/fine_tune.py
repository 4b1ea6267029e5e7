"""Fine-tuning: train the head on the frozen base, then unfreeze the top layers at a low learning rate
(catalog: ``fine_tune``; it plans ``epochs + fine_tune_epochs`` epochs)."""
from __future__ import annotations

from ..model import FreezeConfig, freeze, get_backbone
from .base import TrainContext, TrainResult


class FineTune:
    def fit(self, ctx: TrainContext) -> TrainResult:
        cfg = ctx.config
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, cfg.epochs)
        summary = freeze(get_backbone(model), cfg.freeze)
        ctx.emit("phase", phase="unfreeze", **summary.as_dict())
        ctx.compile(model, cfg.fine_tune_learning_rate)          # recompile after changing trainable
        ctx.train_full(model, cfg.fine_tune_epochs, phase="fine-tune")
        return TrainResult(model, ctx.classes)
