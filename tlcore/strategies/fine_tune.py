"""Fine-tuning: train the head on the frozen base, then unfreeze the top layers at a low learning rate
(catalog: ``fine_tune``; it plans ``epochs + fine_tune_epochs`` epochs).

The second phase trains only what changes: the frozen layers run once per image, and the unfrozen top trains on
their cached output (:mod:`tlcore.strategies._boundary`). Where that cannot be done (augmentation with no cached
copies, a backbone that is no chain at the boundary) the whole model trains on the images, and the events say why.
"""
from __future__ import annotations

from ..model import FreezeConfig, freeze, get_backbone
from ._boundary import train_top
from .base import TrainContext, TrainResult


class FineTune:
    def fit(self, ctx: TrainContext) -> TrainResult:
        cfg = ctx.config
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, cfg.epochs)
        summary = freeze(get_backbone(model), cfg.freeze)
        ctx.emit("phase", phase="unfreeze", **summary.as_dict())
        ctx.compile(model, cfg.fine_tune_learning_rate)          # recompile after changing trainable
        if not train_top(ctx, model, cfg.fine_tune_epochs, phase="fine-tune"):
            ctx.train_full(model, cfg.fine_tune_epochs, phase="fine-tune")
        return TrainResult(model, ctx.classes)
