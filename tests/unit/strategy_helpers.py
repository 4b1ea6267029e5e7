"""Helpers the DANN / multi-task / few-shot tests share: a tiny backbone, image writers, one-call runs."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from helpers import tiny_config


def tiny_backbone(path: Path, seed: int = 0) -> Path:
    """A 3-layer random conv net saved as .keras: random features that carry colour and brightness (no BatchNorm)."""
    from tlcore.tf_env import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((None, None, 3))
    x = L.Rescaling(1 / 32.0)(inputs)
    x = L.Conv2D(16, 3, activation="relu")(x)
    x = L.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = L.Conv2D(32, 3, activation="relu")(x)
    keras.Model(inputs, x, name="tiny").save(path)
    return path


def write_images(folder: Path, colours: dict[str, tuple], per_class: int, *, scale: float = 1.0, offset=0,
                 size: int = 32, seed: int = 0, noise: float = 25.0, pattern: bool = False) -> Path:
    """Class folders of noisy solid colours; ``scale``/``offset``/``pattern`` make a superficially different domain."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in colours.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.array(rgb, dtype="float32") * scale + offset + rng.normal(0, noise, (size, size, 3))
            if pattern:
                pixels[::4] += 60
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / name / f"{i}.png")
    return folder


def run(workspace: Path, config):
    """Create and execute one run in this thread; returns (store, run_id, state, run_dir)."""
    from tlcore.runner import execute_run
    from tlcore.runs import RunStore

    store = RunStore(workspace)
    run_id = store.create(config, "test")
    state = execute_run(store, run_id)
    return store, run_id, state, store.run_dir(run_id)


def new_owner_store(workspace: Path, root: Path):
    """(browser token, owner id, a tiny backbone file under ``root``, a RunStore on ``workspace``) for seeded runs."""
    from tlcore import workspace as ws
    from tlcore.runs import RunStore

    token = ws.new_owner_token()
    return token, ws.owner_id(token=token), tiny_backbone(root / "bb.keras"), RunStore(workspace)


def train_runs(store, owner: str, configs: dict) -> dict[str, str]:
    """Create and train each named config in ``store`` for ``owner``; {name: run id}, every run done."""
    from tlcore.runner import execute_run
    from tlcore.runs import RunState

    made = {}
    for name, cfg in configs.items():
        run_id = store.create(cfg, owner)
        assert execute_run(store, run_id) == RunState.DONE, store.get(run_id).error
        made[name] = run_id
    return made


def epochs(store, run_id, phase=None) -> list[dict]:
    return [e for e in store.read_events(run_id) if e["type"] == "epoch" and phase in (None, e.get("phase"))]


def config(data, backbone_file: Path | None = None, **overrides):
    base = dict(epochs=8, learning_rate=1e-3, val_split=0.2, test_split=0.2)
    if backbone_file is not None:
        base["backbone_file"] = str(backbone_file)
    base.update(overrides)
    return tiny_config(data, **base)


def keras_classes(model_path: Path) -> set[str]:
    """Every layer class name and registered name in a .keras file (to check nothing custom is inside)."""
    with zipfile.ZipFile(model_path) as z:
        doc = json.loads(z.read("config.json"))
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node:
                found.add(str(node.get("registered_name") or node["class_name"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found


def predict_without_tlcore(model_path: Path, images: np.ndarray) -> np.ndarray:
    """Load ``model_path`` with safe_mode in a fresh Python that never imports tlcore; its outputs on ``images``."""
    npy = model_path.with_suffix(".inputs.npy")
    np.save(npy, images)
    out = model_path.with_suffix(".outputs.npy")
    code = (
        "import os, sys, numpy as np; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'; import keras; "
        f"m = keras.saving.load_model({str(model_path)!r}, safe_mode=True, compile=False); "
        f"np.save({str(out)!r}, np.asarray(m.predict(np.load({str(npy)!r}), verbose=0))); "
        "assert not any(k.startswith('tlcore') for k in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120, cwd="/")
    return np.load(out)


def texture_backbone(path: Path, seed: int = 0) -> Path:
    """A random backbone with two kinds of channels: linear colour channels (their pooled value depends only on
    the mean colour) and ReLU texture channels (they also respond to noise and patterns). Images whose domains
    differ only in texture then differ only in the texture channels: an adapter can learn to ignore them."""
    from tlcore.tf_env import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inputs = keras.Input((None, None, 3))
    x = L.Rescaling(1 / 32.0)(inputs)
    colour = L.Conv2D(16, 1, name="colour")(x)
    conv = L.Conv2D(16, 3, activation="relu", use_bias=False, name="texture")
    texture = conv(x)
    kernel = conv.get_weights()[0]
    conv.set_weights([(kernel - kernel.mean(axis=(0, 1), keepdims=True)) * 4])   # zero-sum: blind to flat colour
    keras.Model(inputs, L.Concatenate()([L.Cropping2D(1)(colour), texture]), name="texture_net").save(path)
    return path
