"""Test set-up: a private Keras cache and workspace, shared-data fixtures, and tiny generated images."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import MOBILENET_FILE, ROOT, SHARED, write_colour_images  # noqa: F401

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
# The automatic search stops after a few seconds in tests (the option's default is 60 s on a real server).
os.environ.setdefault("TLS_AUTO_BUDGET_S", "3")
# Unit and app tests patch the engine in this process, so their runs train in a thread here; the worker tests
# (tests/unit/test_worker_faults.py) and the browser tests' server (tests/e2e/_e2e.py) use child processes.
os.environ.setdefault("TLS_EXECUTOR", "thread")



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


@pytest.fixture
def colour_folder(tmp_path) -> Path:
    return write_colour_images(tmp_path / "colours")


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path
