"""Tasks of a multi-task run, as every post-training step reads them: names, output keys, metrics.

A multi-task ``model.keras`` outputs a dict {output key: probabilities}; ``tasks.json`` lists {task: classes} in
output order (the main task first), and :func:`output_keys` maps task names to output keys (the task name itself
whenever it is a valid Keras name). ``labels.json`` holds the main task's classes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import read_json
from .calls import over_files
from .errors import DataError
from .metrics import report
from .tf_env import keras


def output_keys(tasks: list[str]) -> dict[str, str]:
    """Task name → model output key: the name with characters Keras refuses replaced by '_', made unique."""
    keys: dict[str, str] = {}
    used: set[str] = set()
    for task in tasks:
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", str(task).strip()) or "task"
        base, n = key, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys[task] = key
    return keys


def sample_label(sample: Any, task: str, primary: str) -> str | None:
    """The sample's label for ``task``: its main label for the primary task, else its extra column's value."""
    return sample.label if task == primary else sample.labels.get(task)


def load_tasks(run_dir: str | Path) -> dict[str, list[str]]:
    """A multi-task run's {task: classes} (``tasks.json``)."""
    path = Path(run_dir) / "tasks.json"
    tasks = read_json(path)
    if tasks is None:
        raise DataError(f"{path} is missing or damaged: this is not a finished multi-task run.")
    return tasks


def predict_outputs(model: keras.Model, paths: list[str], image_size: int, batch_size: int = 32) -> dict[str, np.ndarray]:
    """{output key: probabilities (N, classes)} for image files, through the training input pipeline."""
    return over_files(model, paths, image_size, batch_size)


def task_report(samples: list, labels: list[str | None], probs: np.ndarray | None, classes: list[str],
                top_k: int = 3) -> dict:
    """The metrics of one task (:func:`tlcore.metrics.report`) over the samples that have a label for it, and
    how many have none (``missing``)."""
    result = report(samples, labels, probs, classes, top_k, note="No test image has this label, so it was not measured.")
    result["missing"] = len(labels) - result["n"]
    result.setdefault("accuracy", None)   # not measured
    return result


def evaluate_tasks(model: keras.Model, samples: list, tasks: dict[str, list[str]], image_size: int,
                   batch_size: int = 32, top_k: int = 3, split: str = "test") -> dict:
    """The evaluation of a multi-task model: the main task's report at the top level (the same keys as any
    run's evaluation, so every page reads it alike), every task's report under ``tasks``, their accuracies."""
    primary = next(iter(tasks))
    probs = predict_outputs(model, [s.path for s in samples], image_size, batch_size) if samples else {}
    keys = output_keys(list(tasks))
    reports = {}
    for task, classes in tasks.items():
        labels = [sample_label(s, task, primary) for s in samples]
        reports[task] = task_report(samples, labels, probs.get(keys[task]), classes, top_k)
    measured = {t: r["accuracy"] for t, r in reports.items() if r.get("accuracy") is not None}
    return {**reports[primary], "split": split, "task": primary, "tasks": reports, "task_accuracy": measured,
            "mean_task_accuracy": float(np.mean(list(measured.values()))) if measured else None}
