"""Shared set-up for the benchmarks: the real Keras cache, a private workspace, birds5, generated images, repeats.

Import this module before TensorFlow: :func:`setup` sets ``KERAS_HOME`` (a temporary copy of
``../shared/keras_home``, as ``tests/conftest.py`` does), ``TLS_WORKSPACE`` and quiet TF logs.
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BIRDS5 = SHARED / "datasets" / "birds5"
sys.path.insert(0, str(ROOT))


def setup(work: Path | None = None) -> Path:
    """Environment for a benchmark process (before TensorFlow loads); returns its scratch folder."""
    work = Path(work or tempfile.mkdtemp(prefix="bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "KERAS_HOME" not in os.environ:
        home = work / "keras_home"
        if (SHARED / "keras_home").is_dir() and not home.exists():
            shutil.copytree(SHARED / "keras_home", home)
        os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TLS_WORKSPACE", str(work / "workspace"))
    return work


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python, TensorFlow and any GPU."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = f"Python {platform.python_version()}"
    gpu = "no GPU"
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        versions += f", TensorFlow {tf.__version__}"
        gpus = tf.config.list_physical_devices("GPU")
        gpu = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
    return f"{model}, {cores} cores{mem}, {platform.system()} {platform.release()}, {versions}, {gpu}"


@dataclass
class Figure:
    """A measured figure: the median of repeats and their spread (min..max)."""

    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.values), max(self.values)) if self.values else (float("nan"), float("nan"))

    def as_dict(self) -> dict:
        lo, hi = self.spread
        return {"median": self.median, "min": lo, "max": hi, "values": list(self.values), "note": self.note}


def repeat(fn: Callable[[], float], repeats: int = 3, warmup: int = 1) -> Figure:
    """Call ``fn`` (which returns one value) ``warmup`` times, then ``repeats`` times; the repeats make the Figure."""
    for _ in range(warmup):
        fn()
    return Figure([float(fn()) for _ in range(max(1, repeats))])


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def birds5_dataset(work: Path, limit: int | None = None):
    """The birds5 dataset imported into ``work`` (train split only when ``limit`` resamples it)."""
    from tlcore.data import load_data

    return load_data(str(BIRDS5), work / "birds5")


def generated_images(folder: Path, count: int, classes: int = 5, size: int = 96, seed: int = 0,
                     source: Path | None = None) -> Path:
    """``count`` images in ``classes`` class folders: resampled from ``source`` (a folder of class folders) when
    given, each copy a different random crop so no two files are the same content, else noisy generated JPEGs."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files: list[Path] = []
    if source is not None:
        files = sorted(p for p in Path(source).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for i in range(count):
        cls = folder / f"class{i % classes}"
        cls.mkdir(exist_ok=True)
        if files:
            img = Image.open(files[i % len(files)]).convert("RGB")
            w, h = img.size
            dx, dy = int(rng.integers(0, max(1, w // 8))), int(rng.integers(0, max(1, h // 8)))
            img.crop((dx, dy, w - w // 8 + dx, h - h // 8 + dy)).save(cls / f"{i}.jpg", quality=90)
        else:
            base = np.array([(i * 53) % 256, (i * 97) % 256, (i * 29) % 256]) * ((i % classes) + 1) % 256
            pixels = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(cls / f"{i}.jpg", quality=90)
    return folder
