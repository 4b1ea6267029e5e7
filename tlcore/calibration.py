"""Calibrated confidence, "not sure" and "not one of my classes" (issue 15, parts 2 and 3).

- **Temperature scaling** (Guo et al. 2017): one number T fitted on the validation images so that
  softmax(logits / T) is as likely as possible. It is kept *inside* the saved model: the final Dense layer's kernel
  and bias are divided by T, which is exactly softmax(logits / T), so the model stays standard Keras layers (it
  loads with safe_mode and without tlcore) and every export carries it.
- **Not sure**: below ``unsure_below`` (the lowest validation confidence above which the answers are still 95%
  precise) an answer is "unsure".
- **Not one of my classes**: the cosine distance of an image's pooled backbone features to the nearest class mean
  (a prototype); above the 99th percentile of the training images' distances to their own class it is "unknown".

:func:`save_confidence` writes ``calibration.json`` (and ``ood.npz``) in the run folder; :func:`load_confidence`
reads them back as a :class:`Confidence`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .vectors import unit

CALIBRATION_FILE, OOD_FILE = "calibration.json", "ood.npz"
MIN_CALIBRATION_IMAGES = 10     # fewer validation images than this: no temperature is fitted
PRECISION_TARGET = 0.95         # "not sure" below the confidence that keeps this precision on validation
OOD_QUANTILE = 99.0             # "not one of my classes" above this percentile of in-class training distances
STATUSES = ("confident", "unsure", "unknown")


@dataclass
class Confidence:
    """What a run knows about its own confidence: its temperature, the "not sure" threshold and the prototypes."""

    temperature: float = 1.0
    unsure_below: float = 0.0
    ood_threshold: float | None = None
    means: np.ndarray | None = None            # (classes, features), unit length
    info: dict = field(default_factory=dict)    # calibration.json as written

    def ood_scores(self, features: np.ndarray) -> np.ndarray | None:
        """1 − the cosine similarity to the nearest class mean, per image (None without prototypes)."""
        return None if self.means is None else ood_scores(features, self.means)

    def status(self, confidence: float | None) -> str:
        """The status of one answer known only by its confidence (no features: a multi-task answer)."""
        return self.statuses(np.array([[confidence or 0.0]]))[0]

    def statuses(self, probs: np.ndarray, ood: np.ndarray | None = None) -> list[str]:
        """``unknown`` (far from every class), ``unsure`` (below the threshold) or ``confident``, per image."""
        top = np.asarray(probs).max(axis=1)
        out = []
        for i, p in enumerate(top):
            if ood is not None and self.ood_threshold is not None and ood[i] > self.ood_threshold:
                out.append("unknown")
            else:
                out.append("unsure" if p < self.unsure_below else "confident")
        return out


# -- temperature --------------------------------------------------------------------------------------------
def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    p = np.asarray(probs, "float64")[np.arange(len(y)), np.asarray(y)]
    return float(-np.mean(np.log(np.clip(p, 1e-30, None))))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature T in [0.05, 20] that minimises the NLL of softmax(log p / T) on (probs, y)."""
    from scipy.optimize import minimize_scalar

    from .metrics import rescale

    result = minimize_scalar(lambda t: nll(rescale(probs, math.exp(-t)), y), bounds=(math.log(0.05), math.log(20)),
                             method="bounded", options={"xatol": 1e-4})
    return float(math.exp(result.x))


def final_dense(model: Any) -> Any:
    """The Dense layer whose output, through only Rescaling (no offset) and softmax layers, is the model's single
    output (nested models are followed); None when there is none (several outputs, another last layer)."""
    if isinstance(model.output, (dict, list, tuple)):
        return None
    tensor = model.output
    for _ in range(50):
        layer = tensor._keras_history[0]
        kind = type(layer).__name__
        if kind in ("Functional", "Model", "Sequential") and hasattr(layer, "output"):
            tensor = layer.output
            continue
        if kind == "Dense":
            activation = getattr(layer.activation, "__name__", "")
            return layer if activation in ("softmax", "linear") else None
        if kind == "Softmax" or (kind == "Activation" and getattr(layer.activation, "__name__", "") == "softmax") \
                or (kind == "Rescaling" and not np.any(np.asarray(layer.offset))):
            inputs = layer._inbound_nodes[0].input_tensors
            if len(inputs) != 1:
                return None
            tensor = inputs[0]
            continue
        return None
    return None


def apply_temperature(model: Any, temperature: float) -> bool:
    """Divide the final Dense layer's kernel and bias by ``temperature`` (softmax(logits / T)); False when the
    model has no such layer (it is left as it is)."""
    dense = final_dense(model)
    if dense is None or not dense.trainable:         # a frozen last layer is data (few-shot prototypes)
        return False
    for weight in dense.weights:
        weight.assign(np.asarray(weight.numpy()) / float(temperature))
    return True


def unsure_threshold(probs: np.ndarray, y: np.ndarray, precision: float = PRECISION_TARGET) -> float:
    """The lowest confidence c such that the answers at or above c are at least ``precision`` right (0 when every
    answer already is; the highest confidence + a little when none is)."""
    confidence = np.asarray(probs).max(axis=1)
    right = np.asarray(probs).argmax(axis=1) == np.asarray(y)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(hits >= precision)
    if not len(ok):
        return float(min(1.0, confidence.max() + 1e-6)) if len(confidence) else 0.0
    last = ok[-1]
    return 0.0 if last == len(order) - 1 else float(confidence[order[last]])


# -- not one of my classes ----------------------------------------------------------------------------------
def class_means(features: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Unit-length mean of each class's unit-length features (a zero row for a class with no image)."""
    normed, y = unit(features, dtype="float64"), np.asarray(y)
    means = np.stack([normed[y == c].mean(0) if (y == c).any() else np.zeros(normed.shape[1])
                      for c in range(n_classes)])
    return unit(means, dtype="float64").astype("float32")


def ood_scores(features: np.ndarray, means: np.ndarray) -> np.ndarray:
    """1 − max cosine similarity to the class means, per row of ``features``."""
    return (1.0 - (unit(features, dtype="float64") @ np.asarray(means, "float64").T).max(axis=1)).astype("float32")


def ood_threshold(features: np.ndarray, y: np.ndarray, means: np.ndarray, quantile: float = OOD_QUANTILE) -> float:
    """The ``quantile`` percentile of the training images' cosine distances to their own class mean."""
    sims = (unit(features, dtype="float64") * np.asarray(means, "float64")[np.asarray(y)]).sum(axis=1)
    return float(np.percentile(1.0 - sims, quantile))


# -- the run folder -----------------------------------------------------------------------------------------
def calibrate(model: Any, val_probs: np.ndarray | None, val_y: np.ndarray | None) -> dict:
    """Fit and apply a temperature from the validation probabilities, and choose the "not sure" threshold.
    Returns calibration.json's fields; the reason in ``note`` when nothing was fitted."""
    from .metrics import expected_calibration_error, rescale

    info: dict[str, Any] = {"temperature": 1.0, "unsure_below": 0.0, "precision_target": PRECISION_TARGET}
    n = 0 if val_probs is None else len(val_probs)
    if n < MIN_CALIBRATION_IMAGES:
        info["note"] = (f"Only {n} validation image{'s' if n != 1 else ''}: the confidence is not calibrated. "
                        f"Use at least {MIN_CALIBRATION_IMAGES} (raise the validation split on the Data page).")
        return info
    dense = final_dense(model)
    if dense is None or not dense.trainable:
        info["note"] = ("This model's last layer holds fixed class prototypes: its confidence is set by its "
                        "temperature option, not calibrated." if dense is not None else
                        "This model's outputs have no final softmax layer to calibrate: its confidence is as trained.")
        info["unsure_below"] = unsure_threshold(val_probs, val_y)
        return info
    temperature = fit_temperature(val_probs, val_y)
    apply_temperature(model, temperature)
    calibrated = rescale(val_probs, 1.0 / temperature)
    info.update(temperature=temperature, fitted_on="validation", n=n,
                nll_before=nll(val_probs, val_y), nll_after=nll(calibrated, val_y),
                ece_val_before=expected_calibration_error(val_y, val_probs),
                ece_val_after=expected_calibration_error(val_y, calibrated),
                unsure_below=unsure_threshold(calibrated, val_y))
    return info


def save_confidence(run_dir: str | Path, info: dict, means: np.ndarray | None = None,
                    threshold: float | None = None) -> None:
    """Write calibration.json (and ood.npz with the class means when given), atomically."""
    from .runs import atomic_write

    run_dir = Path(run_dir)
    if means is not None and threshold is not None:
        tmp = run_dir / (OOD_FILE + ".tmp.npz")
        np.savez(tmp, means=np.asarray(means, "float32"), threshold=np.float32(threshold))
        tmp.replace(run_dir / OOD_FILE)
        info = {**info, "ood_threshold": float(threshold), "ood_quantile": OOD_QUANTILE}
    atomic_write(run_dir / CALIBRATION_FILE, json.dumps(info, indent=2))


def load_confidence(run_dir: str | Path | None) -> Confidence:
    """The run's :class:`Confidence`; a run from before calibration (no file) gets T = 1 and no thresholds."""
    if run_dir is None:
        return Confidence()
    path = Path(run_dir) / CALIBRATION_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Confidence()
    means, threshold = None, None
    try:
        with np.load(Path(run_dir) / OOD_FILE) as data:
            means, threshold = np.asarray(data["means"]), float(data["threshold"])
    except (OSError, KeyError, ValueError):
        pass
    return Confidence(float(info.get("temperature", 1.0)), float(info.get("unsure_below", 0.0)), threshold, means,
                      info)
