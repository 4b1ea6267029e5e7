"""Predicting with a trained run: the Predictor, the prediction table and its column names.

A run folder (:mod:`tlcore.artifacts`) holds ``model.keras`` (raw RGB pixels 0-255 of any size → softmax),
``labels.json`` and ``config.json``. Images go through :func:`tlcore.calls.over_images`: decoded and resized in
parallel with the model's calls, with the pixels training sees (TensorFlow's decoder for the files training keeps
as they are, PIL as the import normalises the others: EXIF rotation, odd modes, big photos).
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .artifacts import load_labels, load_run_config, model_path
from .backbones import resolve_size
from .calibration import Confidence, load_confidence
from .calls import as_list, batched_call, over_images, prepare_images, resize, traced_call
from .calls import to_rgb_array  # noqa: F401 - re-exported for the Predict page
from .errors import DataError, ImageError, RunError
from .run_data import run_dataset
from .runs import RunConfig
from .tasks import load_tasks, output_keys
from .tf_env import keras, tf


# -- the run's model ----------------------------------------------------------------------------------------
def load_run_model(run_dir: str | Path) -> keras.Model:
    """The run's ``model.keras``, loaded with safe_mode (no Lambda code runs) and without compiling."""
    path = model_path(run_dir)
    try:
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise RunError(f"The run's model.keras could not be read ({type(exc).__name__}): "
                       "it is damaged, so train the run again.") from exc


def main_task_model(model: keras.Model, run_dir: str | Path) -> keras.Model:
    """A multi-task model (dict of outputs) narrowed to its main task, whose classes ``labels.json`` holds."""
    if not isinstance(model.output, dict):
        return model
    tasks = list(load_tasks(run_dir))
    key = output_keys(tasks)[tasks[0]]
    return keras.Model(model.inputs, model.output[key], name="main_task")


def model_image_size(model: keras.Model | None, config: RunConfig | None = None) -> int:
    """The size the model resizes to: its "resize" layer, else the run config / backbone default."""
    if model is not None:
        try:
            return int(model.get_layer("resize").height)
        except (ValueError, AttributeError):
            pass
    if config is not None and config.image_size:
        return int(config.image_size)
    if config is not None and not config.backbone_file:
        return resolve_size(config.backbone, None)
    return 224


# -- predictor ----------------------------------------------------------------------------------------------
class Predictor:
    """A trained run ready to classify images: ``Predictor.from_run(run_dir).predict([...], top_k=3)``."""

    def __init__(self, model: keras.Model, classes: list[str], image_size: int, run_dir: Path | None = None,
                 tasks: dict[str, list[str]] | None = None, full_model: keras.Model | None = None) -> None:
        n_out = int(model.output.shape[-1])
        if n_out != len(classes):
            raise RunError(f"The model has {n_out} outputs but labels.json names {len(classes)} classes: "
                           "train the run again.")
        self.model, self.classes, self.image_size, self.run_dir = model, list(classes), int(image_size), run_dir
        # multi-task: every task's classes (main task first) and the model with one output per task
        self.tasks, self.full_model = dict(tasks or {}), full_model
        self.confidence: Confidence = load_confidence(run_dir)
        self._scoring: keras.Model | None = None
        self.tta = False       # test-time augmentation: average each image with its mirror image (off by default)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Predictor":
        """Load the model, labels and input size of a finished run."""
        full = load_run_model(run_dir)
        model = main_task_model(full, run_dir)
        tasks = None
        if model is not full:
            tasks = load_tasks(run_dir)
        classes = load_labels(run_dir)
        try:
            config = load_run_config(run_dir)
        except Exception:  # noqa: BLE001 - the resize layer usually answers anyway
            config = None
        return cls(model, classes, model_image_size(model, config), Path(run_dir), tasks,
                   full if tasks else None)

    @property
    def multitask(self) -> bool:
        """True for a multi-task run (one answer per label column)."""
        return len(self.tasks) > 1 and self.full_model is not None

    def warm_up(self) -> "Predictor":
        """Trace the model's call now (about a second), so that every later prediction, one image too, runs at
        the bare-call rate. The Predict page does it while it loads the model."""
        for model in (self.model, self.full_model):
            if model is not None:
                traced_call(model, self.image_size)(tf.zeros((1, self.image_size, self.image_size, 3)))
        return self

    def _task_outputs(self, out: Any) -> dict[str, np.ndarray]:
        if not self.multitask:
            return {next(iter(self.tasks), "label"): out}
        keys = output_keys(list(self.tasks))
        return {task: out[keys[task]] for task in self.tasks}

    def task_outputs(self, images: Any, names: Sequence[str] | None = None,
                     errors: dict[int, ImageError] | None = None) -> tuple[dict[str, np.ndarray], list[int]]:
        """({task: probabilities}, indices of the images they belong to) for images of any kind, decoded in
        parallel with the model (:func:`tlcore.calls.over_images`); a bad image goes to ``errors`` when given."""
        model = self.full_model if self.multitask else self.model
        out, order = over_images(model, as_list(images), self.image_size, names=names, errors=errors,
                                       tta=self.tta)
        return self._task_outputs(out), order

    def task_probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Multi-task: {task: probabilities (N, classes)} for a prepared batch; {main task: ...} otherwise."""
        return self._task_outputs(batched_call(self.full_model if self.multitask else self.model, batch))

    def predict_tasks(self, images: Any, top_k: int = 3) -> list[dict[str, list[tuple[str, float]]]]:
        """Every task's top ``top_k`` (class, probability) pairs per image: [{task: [...]}, ...]."""
        probs, _ = self.task_outputs(images)
        tasks = self.tasks if self.multitask else {next(iter(probs)): self.classes}
        tops = {task: _top(probs[task], tasks[task], top_k) for task in tasks}
        return [{task: tops[task][i] for task in tasks} for i in range(len(next(iter(tops.values()))))]

    def scoring_model(self) -> keras.Model | None:
        """The model with a second output, the pooled backbone features, for the "not one of my classes" score
        (one pass gives both); None when the run has no class prototypes or the model no ``pool`` layer."""
        if self._scoring is None and self.confidence.means is not None and not self.multitask:
            try:
                pooled = self.model.get_layer("pool").output
            except ValueError:
                return None
            self._scoring = keras.Model(self.model.inputs, {"probabilities": self.model.output, "features": pooled})
        return self._scoring

    def assess(self, images: Any, names: Sequence[str] | None = None, errors: dict[int, ImageError] | None = None
               ) -> tuple[np.ndarray, np.ndarray | None, list[str], list[int]]:
        """(probabilities, out-of-distribution scores or None, statuses, indices of the images they belong to):
        each image is ``confident``, ``unsure`` (below the run's validation threshold) or ``unknown`` (its features
        lie far from every class)."""
        model = self.scoring_model()
        if model is None:
            probs, order = over_images(self.model, as_list(images), self.image_size, names=names, errors=errors,
                                       tta=self.tta)
            ood = None
        else:
            out, order = over_images(model, as_list(images), self.image_size, names=names, errors=errors,
                                       tta=self.tta)
            probs, ood = out["probabilities"], self.confidence.ood_scores(out["features"])
        return probs, ood, self.confidence.statuses(probs, ood), order

    def prepare(self, images: Any) -> np.ndarray:
        """Decode (PIL, one at a time) and resize images → float32 batch (N, size, size, 3), 0-255. Prediction
        itself goes through :func:`tlcore.calls.over_images`, which decodes JPEGs with TensorFlow as training does."""
        return prepare_images(images, self.image_size)

    def resize(self, array: np.ndarray) -> np.ndarray:
        """One decoded image → float32 (size, size, 3), resized one at a time so big photos never pile up."""
        return resize(array, self.image_size)

    def probabilities(self, images: Any) -> np.ndarray:
        """Softmax probabilities, shape (N, classes); the first bad image raises its ImageError."""
        return over_images(self.model, as_list(images), self.image_size, tta=self.tta)[0]

    def predict(self, images: Any, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """The top ``top_k`` (class, probability) pairs per image, most likely first."""
        return self.top_k(self.probabilities(images), top_k)

    def top_k(self, probs: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """Probabilities (N, classes) → the ``top_k`` (class, probability) pairs per row, most likely first."""
        return _top(probs, self.classes, top_k)


def _top(probs: np.ndarray, classes: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    k = max(1, min(int(top_k), len(classes)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]


def predict_table(predictor: Predictor, named_images: Sequence[tuple[str, bytes]], top_k: int = 3) -> list[dict]:
    """One row per uploaded file (for a CSV download); a bad file gets a row with its error, not an exception.

    Keys: file, prediction, confidence, status (confident / unsure / unknown), ood_score, a ``task:<name>`` and ``task:<name>:confidence`` pair per further task of a
    multi-task run, top1, top1_probability, …, and error; :func:`table_columns` names them in words.
    """
    k = max(1, min(int(top_k), len(predictor.classes)))
    named_images = list(named_images)
    failed: dict[int, ImageError] = {}
    datas, names = [data for _, data in named_images], [name for name, _ in named_images]
    status: dict[int, tuple[str, float | None]] = {}
    if predictor.multitask:
        probs, good = predictor.task_outputs(datas, names, errors=failed)
    else:
        main_probs, ood, statuses, good = predictor.assess(datas, names, errors=failed)
        probs = {next(iter(predictor.tasks), "label"): main_probs}
        status = {i: (statuses[j], None if ood is None else float(ood[j])) for j, i in enumerate(good)}
    errors = {i: str(exc) for i, exc in failed.items()}
    main, *others = predictor.tasks if predictor.multitask else list(probs)
    by_index = dict(zip(good, predictor.top_k(probs[main], k)))
    extra = {task: dict(zip(good, _top(probs[task], predictor.tasks[task], 1))) for task in others}
    rows = []
    for i, (name, _) in enumerate(named_images):
        row: dict[str, Any] = {"file": name, "prediction": "", "confidence": None}
        top = by_index.get(i, [])
        if top:
            row["prediction"], row["confidence"] = top[0]
        for task, answers in extra.items():
            cls, p = answers[i][0] if i in answers else ("", None)
            row[f"task:{task}"], row[f"task:{task}:confidence"] = cls, p
        for rank in range(k):
            cls, p = top[rank] if rank < len(top) else ("", None)
            row[f"top{rank + 1}"], row[f"top{rank + 1}_probability"] = cls, p
        row["status"], row["ood_score"] = status.get(i, ("", None)) if top else ("", None)
        if predictor.multitask and top:
            row["status"] = predictor.confidence.status(top[0][1])
        row["error"] = errors.get(i, "")
        rows.append(row)
    return rows


ORDINALS = ("1st", "2nd", "3rd")


def table_columns(predictor: Predictor, keys: Sequence[str]) -> dict[str, str]:
    """predict_table's keys → column names in words ("2nd guess", "colour confidence"), unique."""
    main = next(iter(predictor.tasks)) if predictor.multitask else None
    names: dict[str, str] = {}
    for key in keys:
        if key in ("prediction", "confidence"):
            name = f"{main} {key}" if main else key
        elif key == "ood_score":
            name = "distance from your classes"
        elif key.startswith("task:"):
            task = key[5:].removesuffix(":confidence")
            name = f"{task} confidence" if key.endswith(":confidence") else f"{task} prediction"
        elif key.startswith("top") and key[3:].split("_")[0].isdigit():
            rank = int(key[3:].split("_")[0])
            word = ORDINALS[rank - 1] if rank <= len(ORDINALS) else f"{rank}th"
            name = f"{word} guess" + (" probability" if key.endswith("_probability") else "")
        else:
            name = key
        while name in names.values():
            name += " "
        names[key] = name
    return names


def sample_images(run_dir: str | Path, limit: int = 50) -> list[tuple[str, str | None]]:
    """Images to try a run on: (path, true label) from its test split, else from its whole dataset."""
    dataset = run_dataset(run_dir)
    samples = dataset.split("test") or list(dataset.samples)
    if not samples:
        raise DataError("This run's dataset has no images to try: upload an image instead.")
    return [(s.path, s.label) for s in samples[:limit]]


def download_name(run_name: str | None, run_id: str, what: str) -> str:
    """A download's file name carrying its run: ``<run name>-<short id>-<what>``, safe on every system."""
    text = unicodedata.normalize("NFKD", str(run_name or "run")).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:60] or "run"
    return f"{stem}-{str(run_id)[-6:]}-{what}"


STATUS_WORDS = {"confident": "", "unsure": "not sure", "unknown": "this does not look like any of your classes"}


def prediction_records(predictor: Predictor, images: Sequence[Any], top_k: int = 3) -> list[dict]:
    """The command line's answers: [{image, top: [{class, probability}], status, confidence, ood_score,
    tasks?: {task: [{class, probability}]}}]; ``status`` is confident, unsure or unknown (:meth:`Predictor.assess`)."""
    images = list(images)
    if predictor.multitask:
        answers = predictor.predict_tasks(images, top_k)
        probs = None
    else:
        probs, ood, statuses, _ = predictor.assess(images)
        answers = [{"label": pairs} for pairs in predictor.top_k(probs, top_k)]
    rows = []
    for i, (image, answer) in enumerate(zip(images, answers)):
        tops = {task: [{"class": c, "probability": p} for c, p in pairs] for task, pairs in answer.items()}
        row = {"image": str(image), "top": next(iter(tops.values()))}
        row["confidence"] = row["top"][0]["probability"] if row["top"] else None
        if probs is not None:
            row["status"] = statuses[i]
            row["ood_score"] = None if ood is None else float(ood[i])
        else:
            row["status"] = predictor.confidence.status(row["confidence"])
            row["ood_score"] = None
        if predictor.multitask:
            row["tasks"] = tops
        rows.append(row)
    return rows
