"""The metrics of a classifier on labelled images: the one function every evaluation goes through.

:func:`report` scores one classification task (accuracy with its Wilson interval, top-k, macro F1, per-class
scores, confusion matrix, the most confident mistakes); a single-task evaluation, each task of a multi-task one and
the target images of domain adaptation are all one :func:`report` each.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, top_k_accuracy_score

from .errors import DataError

MAX_MISCLASSIFIED = 500   # an evaluation keeps the most confident mistakes only (per task)
ECE_BINS = 15             # bins of the expected calibration error and the reliability diagram
SMALL_TEST = 30           # fewer test images than this: the accuracy's uncertainty is spelled out


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


def score(samples: list, y_true: np.ndarray, probs: np.ndarray, classes: list[str], top_k: int = 3,
          temperature: float | None = None) -> dict:
    """Accuracy (with its Wilson 95% interval), top-k (only when k < classes), macro F1, per-class scores,
    confusion matrix, the most confident mistakes of ``probs`` (N, classes) against class indices ``y_true``, and
    the calibration: ``ece`` and the reliability diagram; with the model's ``temperature`` also ``temperature``
    and ``ece_uncalibrated`` (the ECE of the same model before its temperature was applied)."""
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
        ece=expected_calibration_error(y_true, probs),
        reliability=reliability(y_true, probs),
    )
    if temperature is not None:
        result.update(temperature=float(temperature),
                      ece_uncalibrated=expected_calibration_error(y_true, rescale(probs, float(temperature))))
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


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """The reliability diagram's data: per confidence bin (equal widths over 0–1) its range, the mean confidence
    of the top class, the share right and the image count; empty bins are left out."""
    probs, y_true = np.asarray(probs, "float64"), np.asarray(y_true)
    confidence, right = probs.max(axis=1), probs.argmax(axis=1) == y_true
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{"low": b / bins, "high": (b + 1) / bins, "confidence": float(confidence[which == b].mean()),
             "accuracy": float(right[which == b].mean()), "count": int((which == b).sum())}
            for b in range(bins) if (which == b).any()]


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the image-weighted mean gap between confidence and accuracy over ``bins`` equal-width bins."""
    rows = reliability(y_true, probs, bins)
    n = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / n) if n else 0.0


def rescale(probs: np.ndarray, factor: float) -> np.ndarray:
    """softmax(factor · log p): the probabilities of the same logits multiplied by ``factor`` (undoes or applies a
    temperature exactly, since log p differs from the logits by a constant per row)."""
    logits = np.log(np.clip(np.asarray(probs, "float64"), 1e-30, None)) * float(factor)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def report(samples: Sequence, labels: Sequence[str | None], probs: np.ndarray | None, classes: list[str],
           top_k: int = 3, *, note: str = "Nothing was measured.", temperature: float | None = None) -> dict:
    """One task's metrics over the samples whose label (``labels[i]``, None when missing) is one of ``classes``:
    {"n", "classes", **:func:`score`}; with no such sample (or no ``probs``), empty tables and ``note``."""
    keep = [i for i, label in enumerate(labels) if label is not None and label in classes]
    result: dict[str, Any] = {"n": len(keep), "classes": list(classes)}
    if not keep or probs is None:
        result.update(per_class=[], confusion_matrix=[], misclassified=[], note=note)
        return result
    index = {c: i for i, c in enumerate(classes)}
    result.update(score([samples[i] for i in keep], np.array([index[labels[i]] for i in keep]), np.asarray(probs)[keep],
                        classes, top_k, temperature))
    return result
