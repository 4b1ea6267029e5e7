"""Test set-up: a private Keras cache and workspace, shared-data fixtures, and tiny generated images."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
_TMP = Path(tempfile.mkdtemp(prefix="tls-tests-"))

# Before TensorFlow/Keras is imported anywhere: a writable copy of the shared Keras cache, and a private workspace.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
_keras_home = _TMP / "keras_home"
if (SHARED / "keras_home").is_dir():
    shutil.copytree(SHARED / "keras_home", _keras_home)
else:
    (_keras_home / "models").mkdir(parents=True)
os.environ["KERAS_HOME"] = str(_keras_home)
os.environ["TLS_WORKSPACE"] = str(_TMP / "workspace")

MOBILENET_FILE = "mobilenet_2_5_224_tf_no_top.h5"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs the shared data folder at {SHARED}, which is absent here")
    return SHARED


@pytest.fixture(scope="session")
def birds5(shared_dir) -> Path:
    path = shared_dir / "datasets" / "birds5"
    if not path.is_dir():
        pytest.skip(f"needs {path} (real birds5 images), which is absent here")
    return path


@pytest.fixture(scope="session")
def imagenet_mobilenet() -> Path:
    path = Path(os.environ["KERAS_HOME"]) / "models" / MOBILENET_FILE
    if not path.is_file():
        pytest.skip(f"needs the real ImageNet weights {MOBILENET_FILE} from ../shared/keras_home, absent here")
    return path


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


@pytest.fixture
def colour_folder(tmp_path) -> Path:
    return write_colour_images(tmp_path / "colours")


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def tiny_config(data: str, **overrides):
    """A RunConfig small enough for a test: random weights, 32 px, a small head."""
    from tlcore.runs import RunConfig

    base = dict(data=str(data), backbone="mobilenet_025", weights="none", image_size=32, epochs=3, batch_size=8,
                head={"units": 16, "dropout": 0.0, "enabled": True}, early_stopping=0, learning_rate=1e-2,
                val_split=0.2, test_split=0.2)
    base.update(overrides)
    return RunConfig(**base)
