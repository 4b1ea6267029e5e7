"""Predicting with a trained run, and the run-folder helpers every post-training module shares.

A run folder holds ``model.keras`` (raw RGB pixels 0-255 of any size → softmax), ``labels.json`` and
``config.json``. Images are decoded with :func:`tlcore.images.load_rgb` (EXIF, modes, first frame) and
resized with :func:`tlcore.pipeline.prepare_arrays`, exactly as in training.
"""
from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from . import images as image_io
from .errors import DataError, ImageError, RunError
from .pipeline import prepare_arrays
from .runs import RunConfig
from .tf_env import keras, tf

BATCH_SIZE = 32


# -- run folder helpers -------------------------------------------------------------------------------------
def _run_folder(run_dir: str | Path) -> Path:
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
        from .runs import RunStore

        return RunStore(workspace).get(path.name).state.value
    except Exception:  # noqa: BLE001 - only used to word an error message
        return "unknown"


def load_run_model(run_dir: str | Path) -> keras.Model:
    """The run's ``model.keras``, loaded with safe_mode (no Lambda code runs) and without compiling."""
    path = _run_folder(run_dir) / "model.keras"
    if not path.is_file():
        raise RunError(f"This run has no trained model yet: train it first (its state is {run_state(run_dir)}).")
    try:
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise RunError(f"The run's model.keras could not be read ({type(exc).__name__}): "
                       "it is damaged, so train the run again.") from exc


def main_task_model(model: keras.Model, run_dir: str | Path) -> keras.Model:
    """A multi-task model (dict of outputs) narrowed to its main task, whose classes ``labels.json`` holds."""
    if not isinstance(model.output, dict):
        return model
    from .strategies.multitask import load_tasks, output_keys

    tasks = list(load_tasks(run_dir))
    key = output_keys(tasks)[tasks[0]]
    return keras.Model(model.inputs, model.output[key], name="main_task")


def load_labels(run_dir: str | Path) -> list[str]:
    """The class names (``labels.json``), in the order of the model's outputs."""
    path = _run_folder(run_dir) / "labels.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"This run has no trained model yet: train it first (its state is {run_state(run_dir)}).") from None
    except (OSError, ValueError) as exc:
        raise RunError("The run's labels.json could not be read: it is damaged, so train the run again.") from exc
    if not isinstance(labels, list) or not all(isinstance(c, str) for c in labels):
        raise RunError("The run's labels.json is not a list of class names: train the run again.")
    return labels


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The run's ``config.json``."""
    return RunConfig.load(_run_folder(run_dir) / "config.json")


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
        from .backbones import resolve_size

        return resolve_size(config.backbone, None)
    return 224


def run_dataset(run_dir: str | Path, *, target: bool = False):
    """The run's dataset (``data/dataset.json`` in the run, or the workspace dataset it names); None if no target."""
    from .runner import resolve_dataset
    from .settings import workspace_dir

    path = _run_folder(run_dir)
    workspace = path.parent.parent if path.parent.name == "runs" else workspace_dir()
    try:
        return resolve_dataset(load_run_config(path), path, workspace, target=target)
    except DataError as exc:
        raise DataError(f"The images this run was trained on cannot be read ({str(exc).rstrip('.')}): import the "
                        "data again, or evaluate on other labelled images (--data).") from exc


# -- images -------------------------------------------------------------------------------------------------
def to_rgb_array(image: Any, name: str | None = None) -> np.ndarray:
    """A path, bytes, PIL image or HxW(x3/4) array → uint8 HxWx3 RGB. Raises ImageError naming the file."""
    if isinstance(image, Image.Image):
        return image_io.to_array(image)
    if isinstance(image, np.ndarray):
        label = name or "image"
        arr = image
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or min(arr.shape[:2]) < 1:
            raise ImageError(label, f"not an RGB image array (shape {image.shape})", "Pass an array of height × width × 3.")
        return np.clip(arr[..., :3], 0, 255).astype(np.uint8)
    if isinstance(image, (str, Path, bytes, bytearray, memoryview)):
        return image_io.to_array(image_io.load_rgb(bytes(image) if not isinstance(image, (str, Path)) else image, name))
    raise ImageError(name or "image", f"cannot be read from a {type(image).__name__}",
                     "Pass a file path, the file's bytes, a PIL image or an array.")


def _as_list(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


def _name_of(image: Any, index: int) -> str:
    return Path(image).name if isinstance(image, (str, Path)) else f"image {index + 1}"


def _stack(resized: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(resized) if resized else np.zeros((0, size, size, 3), "float32")


def batched_call(model: keras.Model, batch: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Run ``model`` over a float32 batch in chunks (see :func:`model_call`)."""
    chunks = [batch[i:i + batch_size] for i in range(0, len(batch), batch_size)]
    call = model_call(model, len(chunks))
    out = [np.asarray(call(tf.convert_to_tensor(chunk))) for chunk in chunks]
    return np.concatenate(out) if out else np.zeros((0,) + tuple(model.output.shape[1:]), "float32")


_CALLS: "weakref.WeakKeyDictionary[keras.Model, Any]" = weakref.WeakKeyDictionary()
_TRACE_FROM = 3   # tracing costs about a second: worth it from a few batches on (then ~2x faster than predict)


def model_call(model: keras.Model, batches: int = _TRACE_FROM):
    """Inference call for ``model``: eager for a batch or two, else one tf.function per model (traced once for
    any batch and image size, and kept outside the model, so saving and exporting never see it)."""
    fn = _CALLS.get(model)
    if fn is None and batches < _TRACE_FROM:
        return lambda x: model(x, training=False)
    if fn is None:
        ref = weakref.ref(model)
        fn = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        _CALLS[model] = fn
    return fn


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

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "Predictor":
        """Load the model, labels and input size of a finished run."""
        full = load_run_model(run_dir)
        model = main_task_model(full, run_dir)
        tasks = None
        if model is not full:
            from .strategies.multitask import load_tasks

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

    def task_probabilities(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Multi-task: {task: probabilities (N, classes)} for a prepared batch; {main task: ...} otherwise."""
        if not self.multitask:
            return {next(iter(self.tasks), "label"): batched_call(self.model, batch)}
        from .strategies.multitask import output_keys

        keys = output_keys(list(self.tasks))
        call = model_call(self.full_model, -(-len(batch) // BATCH_SIZE))
        chunks = [call(tf.convert_to_tensor(batch[i:i + BATCH_SIZE])) for i in range(0, len(batch), BATCH_SIZE)]
        return {task: (np.concatenate([np.asarray(c[keys[task]]) for c in chunks]) if chunks
                       else np.zeros((0, len(classes)), "float32")) for task, classes in self.tasks.items()}

    def predict_tasks(self, images: Any, top_k: int = 3) -> list[dict[str, list[tuple[str, float]]]]:
        """Every task's top ``top_k`` (class, probability) pairs per image: [{task: [...]}, ...]."""
        probs = self.task_probabilities(self.prepare(images))
        tasks = self.tasks if self.multitask else {next(iter(probs)): self.classes}
        tops = {task: _top(probs[task], tasks[task], top_k) for task in tasks}
        return [{task: tops[task][i] for task in tasks} for i in range(len(next(iter(tops.values()))))]

    def prepare(self, images: Any) -> np.ndarray:
        """Decode and resize images exactly as in training → float32 batch (N, size, size, 3), 0-255."""
        items = _as_list(images)
        return _stack([self.resize(to_rgb_array(img, _name_of(img, i))) for i, img in enumerate(items)], self.image_size)

    def resize(self, array: np.ndarray) -> np.ndarray:
        """One decoded image → float32 (size, size, 3), resized one at a time so big photos never pile up."""
        return prepare_arrays([array], self.image_size)[0]

    def probabilities(self, images: Any) -> np.ndarray:
        """Softmax probabilities, shape (N, classes)."""
        return batched_call(self.model, self.prepare(images))

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

    Keys: file, prediction, confidence, a ``task:<name>`` and ``task:<name>:confidence`` pair per further task of a
    multi-task run, top1, top1_probability, …, and error; :func:`table_columns` names them in words.
    """
    k = max(1, min(int(top_k), len(predictor.classes)))
    resized, good, errors = [], [], {}
    for i, (name, data) in enumerate(named_images):
        try:
            resized.append(predictor.resize(to_rgb_array(data, name)))
            good.append(i)
        except ImageError as exc:
            errors[i] = str(exc)
    probs = predictor.task_probabilities(_stack(resized, predictor.image_size))
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
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", str(run_name or "run")).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:60] or "run"
    return f"{stem}-{str(run_id)[-6:]}-{what}"


def prediction_records(predictor: Predictor, images: Sequence[Any], top_k: int = 3) -> list[dict]:
    """The command line's answers: [{image, top: [{class, probability}], tasks?: {task: [{class, probability}]}}]."""
    rows = []
    for image, answer in zip(images, predictor.predict_tasks(list(images), top_k)):
        tops = {task: [{"class": c, "probability": p} for c, p in pairs] for task, pairs in answer.items()}
        row = {"image": str(image), "top": next(iter(tops.values()))}
        if predictor.multitask:
            row["tasks"] = tops
        rows.append(row)
    return rows
