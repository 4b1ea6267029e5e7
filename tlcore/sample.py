"""A small synthetic dataset generated on this machine, so the studio can be tried without any download."""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SAMPLE_NAME = "Synthetic shapes (generated on this machine)"
SAMPLE_CLASSES = ("circle", "square", "triangle")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float,
                colour: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        return
    corners = 4 if shape == "square" else 3
    points = [(cx + r * math.cos(angle + 2 * math.pi * k / corners), cy + r * math.sin(angle + 2 * math.pi * k / corners))
              for k in range(corners)]
    draw.polygon(points, fill=colour)


def _contrasting(rng: random.Random, background: tuple[int, int, int]) -> tuple[int, int, int]:
    while True:
        colour = tuple(rng.randrange(256) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(colour, background)) > 180:
            return colour  # type: ignore[return-value]


def make_sample(dest: Path, per_class: int = 40, size: int = 96, seed: int = 0) -> Path:
    """Write ``per_class`` PNG images of each shape into ``dest/<class>/`` and return ``dest``.

    Every image has a random background colour with noise, and one shape of random colour, size,
    position and rotation, so the classes differ only by shape.
    """
    dest = Path(dest)
    rng = random.Random(seed)
    noise_rng = np.random.default_rng(seed)
    for shape in SAMPLE_CLASSES:
        folder = dest / shape
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            background = tuple(rng.randrange(256) for _ in range(3))
            img = Image.new("RGB", (size, size), background)  # type: ignore[arg-type]
            r = rng.uniform(0.18, 0.38) * size
            cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
            _draw_shape(ImageDraw.Draw(img), shape, cx, cy, r, rng.uniform(0, 2 * math.pi),
                        _contrasting(rng, background))  # type: ignore[arg-type]
            pixels = np.asarray(img, dtype=np.int16) + noise_rng.integers(-20, 21, (size, size, 3), dtype=np.int16)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{shape}_{index:03d}.png")
    return dest
