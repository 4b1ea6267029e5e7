"""Previews for the pages: the backbone's blocks as frozen/trainable with parameter counts, and one image
augmented several ways. Imports TensorFlow: pages call it lazily, never at start-up."""
from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

import numpy as np

from .backbones import create_backbone
from .errors import ConfigError
from .images import load_rgb, to_array
from .model import FreezeConfig, freeze, list_layers
from .pipeline import AugmentConfig, augmentation
from .tf_env import keras

_LOCK = threading.Lock()   # a cached backbone is shared by sessions; freezing mutates it


def counting_backbone(name: str, image_size: int | None = None) -> keras.Model:
    """The backbone with random weights: enough to count and list layers, no download needed."""
    return create_backbone(name, "none", image_size)


def head_params(feature_size: int, num_classes: int, head: dict) -> int:
    """Parameters of the new head: Dense(units) + Dropout + Dense(classes), or Dense(classes) alone."""
    classes = max(2, int(num_classes))
    if head.get("enabled", True):
        units = int(head.get("units", 1024))
        return feature_size * units + units + units * classes + classes
    return feature_size * classes + classes


def freeze_view(backbone: keras.Model, mode: str = "all_but_top", n: int = 20, layer: str | None = None,
                num_classes: int = 3, head: dict | None = None) -> dict:
    """What freezing as asked does to ``backbone``: counts, per-block rows and per-layer rows.

    Returns ``{"summary": {...trainable_params, frozen_params, frozen_layers, total_layers, head_params,
    total_trainable}, "blocks": [{block, first, last, layers, params, trainable_params, status}], "layers": [...]}``.
    """
    with _LOCK:
        summary = freeze(backbone, FreezeConfig(mode=mode, n=int(n), layer=layer))
        infos = list_layers(backbone)
        feature_size = int(backbone.output.shape[-1])
    blocks: list[dict] = []
    for info in infos:
        if not blocks or blocks[-1]["block"] != info.block:
            blocks.append({"block": info.block, "first": info.index, "last": info.index, "layers": 0, "params": 0,
                           "trainable_params": 0, "trainable_layers": 0, "held_params": 0})
        row = blocks[-1]
        row["last"] = info.index
        row["layers"] += 1
        row["params"] += info.params
        if info.trainable:
            row["trainable_params"] += info.params
            row["trainable_layers"] += 1
        elif info.type != "BatchNormalization":
            row["held_params"] += info.params        # frozen by the freeze setting (BatchNorm is always frozen)
    for row in blocks:
        if row["trainable_params"] == 0:
            row["status"] = "frozen"
        elif row["held_params"] == 0:
            row["status"] = "trainable"
        else:
            row["status"] = "partly trainable"
    out = summary.as_dict()
    out["head_params"] = head_params(feature_size, num_classes, head or {})
    out["total_trainable"] = out["trainable_params"] + out["head_params"]
    out["feature_size"] = feature_size
    return {"summary": out, "blocks": blocks, "layers": [asdict(i) for i in infos]}


def augment_preview(image: Any, n: int = 8, augment: dict | None = None, size: int = 160, seed: int = 0,
                    name: str | None = None) -> list[np.ndarray]:
    """``image`` (path or bytes) augmented ``n`` ways by the same layers training uses → uint8 RGB arrays."""
    settings = {k: v for k, v in (augment or {}).items() if k in AugmentConfig.__dataclass_fields__}
    settings["enabled"] = True
    cfg = AugmentConfig(**settings)
    layers = augmentation(cfg, seed=seed)
    base = to_array(load_rgb(image, name), size).astype("float32")
    if layers is None or not len(layers.layers):
        raise ConfigError("Every augmentation is switched off: turn on at least one to see a preview.")
    batch = np.repeat(base[None], int(n), axis=0)
    out = np.asarray(layers(batch, training=True))
    return [np.clip(np.rint(img), 0, 255).astype(np.uint8) for img in out]


def speed_note(params: int, size: int) -> str:
    """A rough, plain speed note for a laptop CPU, from the parameter count and input size."""
    work = params * (size / 224) ** 2
    if work < 1.5e6:
        return "very fast"
    if work < 6e6:
        return "fast"
    if work < 15e6:
        return "medium"
    return "slow on a CPU"


def backbone_rows() -> list[dict]:
    """The backbone table for display, with a speed note."""
    from .backbones import backbone_table

    rows = backbone_table()
    for row in rows:
        row["speed"] = speed_note(int(row["parameters (M)"] * 1e6), int(row["input size"]))
    return rows
