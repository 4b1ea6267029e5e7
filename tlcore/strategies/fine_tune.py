"""Fine-tuning: train the head on the frozen base, then unfreeze the top layers at a low learning rate."""
from __future__ import annotations

from ..model import FreezeConfig, freeze, get_backbone
from .base import TrainContext, TrainResult


class FineTune:
    name = "fine_tune"
    title = "Fine-tuning"
    description = (
        "First the new head trains on the frozen backbone (fast, on cached features). Then the top layers of "
        "the backbone are unfrozen and the whole model trains a little longer at a much lower learning rate, "
        "so the pretrained features adapt to your images without being destroyed. BatchNorm layers stay frozen. "
        "Slower than feature extraction, often a few points more accurate."
    )

    def fit(self, ctx: TrainContext) -> TrainResult:
        cfg = ctx.config
        ctx.total_epochs = cfg.epochs + cfg.fine_tune_epochs
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, cfg.epochs)
        summary = freeze(get_backbone(model), FreezeConfig(**cfg.freeze))
        ctx.emit("phase", phase="unfreeze", **summary.as_dict())
        ctx.compile(model, cfg.fine_tune_learning_rate)          # recompile after changing trainable
        ctx.train_full(model, cfg.fine_tune_epochs, phase="fine-tune")
        return TrainResult(model, ctx.classes)
