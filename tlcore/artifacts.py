"""The run-folder format: which files a run folder holds, how they are read, and the one atomic model save.

A finished run folder holds ``config.json`` (the RunConfig), ``model.keras`` (raw RGB pixels 0-255 of any size →
softmax, or a dict of softmaxes for multi-task), ``labels.json`` (the main task's classes, in output order),
``evaluation.json``, ``data_report.json`` and, per strategy, ``tasks.json`` or ``prototypes.npz``.
No TensorFlow and no scikit-learn here, so pages and the model card can read run files cheaply.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import RunError
from .runs import RunConfig, RunStore

DATASET_PREFIX = "dataset:"   # RunConfig.data naming a dataset imported into the workspace: "dataset:<id>"


def datasets_dir(workspace: str | Path) -> Path:
    """The workspace folder that holds the imported datasets."""
    return Path(workspace) / "datasets"


def read_json(path: str | Path) -> dict | None:
    """A JSON object file as a dict; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_folder(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path; RunError naming the fix when there is no such folder."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"There is no run folder at {path}: check the path or the run id.")
    return path


def run_state(run_dir: str | Path) -> str:
    """The run's state from the workspace index (``runs/<id>`` under a workspace), or 'unknown'."""
    path = Path(run_dir)
    workspace = path.parent.parent
    if path.parent.name != "runs" or not (workspace / "runs.db").is_file():
        return "unknown"
    try:
        return RunStore(workspace).get(path.name).state.value
    except Exception:  # noqa: BLE001 - only used to word an error message
        return "unknown"


def _not_trained(run_dir: str | Path) -> RunError:
    return RunError(f"This run has no trained model yet: train it first (its state is {run_state(run_dir)}).")


def model_path(run_dir: str | Path) -> Path:
    """The run's ``model.keras``; RunError when the run has not been trained."""
    path = run_folder(run_dir) / "model.keras"
    if not path.is_file():
        raise _not_trained(run_dir)
    return path


def load_labels(run_dir: str | Path) -> list[str]:
    """The class names (``labels.json``), in the order of the model's outputs."""
    path = run_folder(run_dir) / "labels.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _not_trained(run_dir) from None
    except (OSError, ValueError) as exc:
        raise RunError("The run's labels.json could not be read: it is damaged, so train the run again.") from exc
    if not isinstance(labels, list) or not all(isinstance(c, str) for c in labels):
        raise RunError("The run's labels.json is not a list of class names: train the run again.")
    return labels


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The run's ``config.json``: the one place a run folder's config is read."""
    return RunConfig.load(run_folder(run_dir) / "config.json")


def save_model(model: Any, path: str | Path) -> Path:
    """Save a Keras model atomically: into a hidden ``.<stem>.partial.keras`` beside ``path``, then renamed, so a
    crash or a full disk never leaves a half-written model where a good one is expected."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path

