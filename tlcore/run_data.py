"""A run's images: the dataset it trains on (and its target images), resolved once into the run folder.

Training resolves the data first (:func:`resolve_dataset`); every later step (evaluate, export, embeddings,
the model card) reads the same copy back through :func:`run_dataset`, so its split stays the one it trained on.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from . import settings
from .artifacts import DATASET_PREFIX, datasets_dir, load_run_config, run_folder
from .data import Dataset, load_data
from .errors import DataError
from .runs import RunConfig


def resolve_dataset(config: RunConfig, run_dir: Path, workspace: Path, *, target: bool = False) -> Dataset | None:
    """The run's dataset: an imported workspace dataset ("dataset:<id>") or a path imported into the run folder."""
    source = config.target_data if target else config.data
    if not source:
        if target:
            return None
        raise DataError("No data was chosen: pick a dataset on the Data page, or pass --data PATH.")
    folder = Path(run_dir) / ("target_data" if target else "data")
    if (folder / "dataset.json").is_file():         # the run's own copy: its split stays the one it trained on
        return Dataset.load(folder)
    if source.startswith(DATASET_PREFIX):
        root = datasets_dir(workspace) / source[len(DATASET_PREFIX):]
        if not (root / "dataset.json").is_file():
            raise DataError(f"The dataset '{source}' no longer exists: import the data again.")
        folder.mkdir(parents=True, exist_ok=True)
        dataclasses.replace(Dataset.load(root), root=folder).save()   # the image files stay where they are
        return Dataset.load(folder)
    kwargs = dict(val_split=config.val_split, test_split=config.test_split, seed=config.seed)
    if target:
        return load_data(source, folder, val_split=0.0, test_split=0.0, seed=config.seed, unlabelled=True)
    if config.label_columns:
        kwargs["label_columns"] = config.label_columns
    return load_data(source, folder, **kwargs)


def run_dataset(run_dir: str | Path, *, target: bool = False) -> Dataset | None:
    """The run's dataset (``data/dataset.json`` in the run, or the workspace dataset it names); None if no target."""
    path = run_folder(run_dir)
    workspace = path.parent.parent if path.parent.name == "runs" else settings.workspace_dir()
    try:
        return resolve_dataset(load_run_config(path), path, workspace, target=target)
    except DataError as exc:
        raise DataError(f"The images this run was trained on cannot be read ({str(exc).rstrip('.')}): import the "
                        "data again, or evaluate on other labelled images (--data).") from exc
