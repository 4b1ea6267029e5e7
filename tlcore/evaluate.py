"""Evaluating a model on labelled images: accuracy, top-k, per-class scores, confusion matrix, mistakes."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, top_k_accuracy_score

from .errors import DataError, RunError
from .predict import load_labels, load_run_config, load_run_model, model_call, model_image_size, run_dataset
from .results import load_json
from .runs import atomic_write
from .tf_env import keras

MAX_MISCLASSIFIED = 500   # the evaluation keeps the most confident mistakes only
SMALL_TEST = 30           # fewer test images than this: the accuracy's uncertainty is spelled out
# What only a strategy measures when training ends (episodes, target images): kept when evaluating again.
KEPT_KEYS = ("few_shot", "domain_adaptation", "target", "target_accuracy", "source_only_target_accuracy")


def predict_paths(model: keras.Model, paths: list[str], image_size: int, batch_size: int = 32) -> np.ndarray:
    """Softmax outputs for image files, streamed through the training input pipeline."""
    from .pipeline import image_dataset

    call = model_call(model, -(-len(paths) // batch_size))
    chunks = [np.asarray(call(batch)) for batch in image_dataset(paths, None, image_size, batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, int(model.output.shape[-1])), "float32")


def check_classes(data_classes: list[str], model_classes: list[str]) -> None:
    """DataError naming the classes of the data that the model does not know."""
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise DataError(
            f"The model was not trained on the class(es) {', '.join(repr(c) for c in unknown)} found in the data; "
            f"use images of its classes only ({', '.join(repr(c) for c in model_classes)}), "
            "or rename the folders to match them."
        )


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z=1.96) of a proportion ``correct / n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if correct <= 0 else max(0.0, centre - half)), (1.0 if correct >= n else min(1.0, centre + half))


def score(samples: list, y_true: np.ndarray, probs: np.ndarray, classes: list[str], top_k: int = 3) -> dict:
    """Accuracy (with its Wilson 95% interval), top-k (only when k < classes), macro F1, per-class scores,
    confusion matrix and the most confident mistakes of ``probs`` (N, classes) against class indices ``y_true``."""
    n, n_classes = len(y_true), len(classes)
    y_pred = probs.argmax(axis=1)
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    correct = int(np.sum(y_true == y_pred))
    low, high = wilson_interval(correct, n)
    result: dict[str, Any] = dict(
        accuracy=correct / n,
        accuracy_ci95=[low, high],
        macro_f1=float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        per_class=[{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                   for c, p, r, f, s in zip(classes, precision, recall, f1, support)],
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    )
    k = max(1, int(top_k))
    if 1 < k < n_classes:   # top-k with k >= classes is always 100%: meaningless, so not measured
        scores = probs[:, 1] if n_classes == 2 else probs  # scikit-learn wants 1-D scores for two classes
        result.update(top_k=k, top_k_accuracy=float(top_k_accuracy_score(y_true, scores, k=k, labels=labels)))
    if n < SMALL_TEST:
        result["uncertainty_note"] = (
            f"Only {n} test image{'s' if n != 1 else ''}: the true accuracy could be anywhere from {low:.0%} to "
            f"{high:.0%} (95% confidence). For a surer figure, use at least {SMALL_TEST} test images: import more "
            "images or raise the test split on the Data page.")
    wrong = np.flatnonzero(y_true != y_pred)
    wrong = wrong[np.argsort(-probs[wrong, y_pred[wrong]], kind="stable")]
    result["misclassified_count"] = int(len(wrong))
    result["misclassified"] = [
        {"path": samples[i].path, "name": samples[i].name, "true": classes[y_true[i]], "predicted": classes[y_pred[i]],
         "confidence": float(probs[i, y_pred[i]]),
         "probabilities": {c: float(p) for c, p in zip(classes, probs[i])}}
        for i in wrong[:MAX_MISCLASSIFIED]
    ]
    return result


def evaluate_model(model: keras.Model, dataset: Any, classes: list[str], image_size: int, *,
                   split: str | None = "test", batch_size: int = 32, top_k: int = 3) -> dict:
    """Metrics of ``model`` on one split of ``dataset`` (``split=None``: every labelled sample); see :func:`score`."""
    samples = dataset.split(split) if split else list(dataset.samples)
    samples = [s for s in samples if s.label is not None]
    check_classes(sorted({s.label for s in samples}), classes)
    n_classes = len(classes)
    if int(model.outputs[0].shape[-1]) != n_classes:
        raise RunError(f"The model has {model.outputs[0].shape[-1]} outputs but {n_classes} class names were given: "
                       "train the run again.")
    result: dict[str, Any] = {"split": split or "all", "n": len(samples), "classes": list(classes)}
    if not samples:
        where = f"the {split} split" if split else "the data"
        result.update(per_class=[], confusion_matrix=[], misclassified=[],
                      note=f"There is no test data: {where} has no labelled images, so nothing was measured. "
                           "Import data with a test share above 0 or a test folder to evaluate.")
        return result
    probs = predict_paths(model, [s.path for s in samples], image_size, batch_size)
    index = {c: i for i, c in enumerate(classes)}
    result.update(score(samples, np.array([index[s.label] for s in samples]), probs, classes, top_k))
    return result


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, top_k: int = 3) -> dict:
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
        from .data import load_data

        dest = run_dir / "eval_data"
        shutil.rmtree(dest, ignore_errors=True)
        dataset = load_data(data, dest, val_split=0.0, test_split=0.0)
        split = "test" if dataset.split("test") else None
    check_classes(dataset.classes, classes)
    model = load_run_model(run_dir)
    image_size = model_image_size(model, config)
    if isinstance(model.output, dict):   # multi-task: every label column, as when training ended
        from .strategies.multitask import evaluate_tasks, load_tasks

        samples = dataset.split(split) if split else list(dataset.samples)
        result = evaluate_tasks(model, samples, load_tasks(run_dir), image_size, config.batch_size, top_k,
                                split or "all")
    else:
        result = evaluate_model(model, dataset, classes, image_size, split=split, batch_size=config.batch_size,
                                top_k=top_k)
    if data is None:   # what only the strategy measured when training ended (episodes, target images) stays
        previous = load_json(run_dir / "evaluation.json") or {}
        result.update({k: previous[k] for k in KEPT_KEYS if k in previous})
    result["data"] = str(data) if data is not None else "run"
    atomic_write(run_dir / "evaluation.json", json.dumps(result, indent=2, ensure_ascii=False))
    return result
