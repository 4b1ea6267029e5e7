"""Plain test helpers (import them with `from helpers import ...`; conftest.py only holds fixtures)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MOBILENET_FILE = "mobilenet_2_5_224_tf_no_top.h5"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_colour_images(root: Path, per_class: int = 12, size: int = 32, classes=None, seed: int = 0,
                        fmt: str = "png") -> Path:
    """Class folders of noisy solid-colour images: trivially separable, so a model must learn them."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in (classes or COLOURS).items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{i}.{fmt}")
    return root


def png_bytes(rgb=(200, 30, 30), size: int = 32, seed: int = 0) -> bytes:
    """One noisy solid-colour PNG, as bytes (an upload in a test)."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def tiny_config(data: str, **overrides):
    """A RunConfig small enough for a test: random weights, 32 px, a small head."""
    from tlcore.runs import RunConfig

    base = dict(data=str(data), strategy="feature_extraction", backbone="mobilenet_025", weights="none", image_size=32,
                epochs=3, batch_size=8,
                head={"units": 16, "dropout": 0.0, "enabled": True}, early_stopping=0, learning_rate=1e-2,
                val_split=0.2, test_split=0.2)
    base.update(overrides)
    return RunConfig(**base)


def wait_until(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` seconds naming
    ``what``: for outcomes another process produces, which no event of ours announces."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
