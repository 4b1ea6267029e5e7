"""Evaluating a model on labelled images: accuracy, top-k, per-class scores, confusion matrix, mistakes.

The metrics themselves are :func:`tlcore.metrics.report`; this module picks the images (a run's test split, or
other labelled data), runs the model over them (:func:`tlcore.calls.over_files`) and writes ``evaluation.json``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import load_labels, load_run_config, read_json
from .calibration import load_confidence
from .calls import over_files
from .data import load_data
from .errors import RunError
from .metrics import MAX_MISCLASSIFIED, SMALL_TEST, check_classes, report, score, wilson_interval  # noqa: F401
from .predict import load_run_model, model_image_size
from .run_data import run_dataset
from .runs import atomic_write
from .tasks import evaluate_tasks, load_tasks
from .tf_env import keras

# What only a strategy measures when training ends (episodes, target images): kept when evaluating again.
KEPT_KEYS = ("few_shot", "domain_adaptation", "target", "target_accuracy", "source_only_target_accuracy")


def predict_paths(model: keras.Model, paths: list[str], image_size: int, batch_size: int = 32,
                  tta: bool = False) -> np.ndarray:
    """Softmax outputs for image files, streamed through the training input pipeline (``tta``: averaged with the
    mirror image)."""
    return over_files(model, paths, image_size, batch_size, tta=tta)


def evaluate_model(model: keras.Model, dataset: Any, classes: list[str], image_size: int, *,
                   split: str | None = "test", batch_size: int = 32, top_k: int = 3,
                   temperature: float | None = None, tta: bool = False) -> dict:
    """Metrics of ``model`` on one split of ``dataset`` (``split=None``: every labelled sample); see :func:`score`."""
    samples = dataset.split(split) if split else list(dataset.samples)
    samples = [s for s in samples if s.label is not None]
    check_classes(sorted({s.label for s in samples}), classes)
    n_classes = len(classes)
    if int(model.outputs[0].shape[-1]) != n_classes:
        raise RunError(f"The model has {model.outputs[0].shape[-1]} outputs but {n_classes} class names were given: "
                       "train the run again.")
    where = f"the {split} split" if split else "the data"
    note = (f"There is no test data: {where} has no labelled images, so nothing was measured. "
            "Import data with a test share above 0 or a test folder to evaluate.")
    probs = predict_paths(model, [s.path for s in samples], image_size, batch_size, tta) if samples else None
    result: dict[str, Any] = {"split": split or "all", "tta": bool(tta)}
    result.update(report(samples, [s.label for s in samples], probs, classes, top_k, note=note,
                         temperature=temperature))
    return result


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, top_k: int = 3, tta: bool = False) -> dict:
    """Evaluate a run on its own test split, or on other labelled images (``data``: folder, zip or CSV).

    Other data is imported into ``run_dir/eval_data``; its own test folder is used when it has one, else
    every image. The result is written to ``run_dir/evaluation.json`` and returned.
    """
    run_dir = Path(run_dir)
    classes = load_labels(run_dir)
    config = load_run_config(run_dir)
    if data is None:
        dataset, split = run_dataset(run_dir), "test"
    else:
        dest = run_dir / "eval_data"
        shutil.rmtree(dest, ignore_errors=True)
        dataset = load_data(data, dest, val_split=0.0, test_split=0.0)
        split = "test" if dataset.split("test") else None
    check_classes(dataset.classes, classes)
    model = load_run_model(run_dir)
    image_size = model_image_size(model, config)
    if isinstance(model.output, dict):   # multi-task: every label column, as when training ended
        samples = dataset.split(split) if split else list(dataset.samples)
        result = evaluate_tasks(model, samples, load_tasks(run_dir), image_size, config.batch_size, top_k,
                                split or "all")
    else:
        result = evaluate_model(model, dataset, classes, image_size, split=split, batch_size=config.batch_size,
                                top_k=top_k, temperature=load_confidence(run_dir).temperature, tta=tta)
    if data is None:   # what only the strategy measured when training ended (episodes, target images) stays
        previous = read_json(run_dir / "evaluation.json") or {}
        result.update({k: previous[k] for k in KEPT_KEYS if k in previous})
    result["data"] = str(data) if data is not None else "run"
    atomic_write(run_dir / "evaluation.json", json.dumps(result, indent=2, ensure_ascii=False))
    return result
