"""The parity matrix: does every exported file answer like the studio's model, on the run's test images?

For each format of :func:`tlcore.export_formats.parity_formats` the file in ``run_dir/exports`` (exported there
when missing or older than the model) is run in its own runtime (Keras, TensorFlow's SavedModel loader, LiteRT's
Interpreter, onnxruntime) on the same pixels as the reference, the studio's model in Keras: the test images
decoded with PIL and resized to the model's size, as the code to paste does. Each row gives the top-1 agreement
with the reference, the largest probability difference, the accuracy against the true labels, and the images on
which the top class differs. A format that disagrees on more than its entry's ``flag_at`` share of the images
(1%, int8 3%) is flagged. The web page runs the very ``model.onnx`` of the onnx row, with onnxruntime-web.
The result is written to ``run_dir/parity.json``; the Export page and the model card show it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .calls import batched_call
from .errors import TLError
from .export import export_all, tflite_probabilities
from .export_formats import FormatEntry, parity_formats
from .onnx_export import OUTPUT_NAME, onnx_probabilities
from .predict import Predictor, main_task_model
from .run_data import run_dataset
from .runs import atomic_write
from .tasks import load_tasks, output_keys
from .tf_env import keras, tf

PARITY_IMAGES = 500      # at most this many test images (birds5 has fewer)
LISTED_IMAGES = 20       # at most this many disagreeing images listed per format


def _main_key(predictor: Predictor) -> str | None:
    """The output key of the main task of a multi-task run (None for one output)."""
    if not predictor.multitask or predictor.run_dir is None:
        return None
    tasks = list(load_tasks(predictor.run_dir))
    return output_keys(tasks)[tasks[0]]


def _pick(out, key: str | None) -> np.ndarray:
    return np.asarray(out[key] if isinstance(out, dict) and key else out, dtype="float32")


def _keras(path: Path, batch: np.ndarray, predictor: Predictor) -> np.ndarray:
    model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    return batched_call(main_task_model(model, predictor.run_dir), batch)


def _savedmodel(path: Path, batch: np.ndarray, predictor: Predictor) -> np.ndarray:
    loaded = tf.saved_model.load(str(path))   # keep it: it owns the variables
    key = _main_key(predictor)
    rows = [_pick({k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else out.numpy(), key)
            for out in (loaded.serve(tf.constant(batch[i:i + 32])) for i in range(0, len(batch), 32))]
    return np.concatenate(rows)


def _tflite(path: Path, batch: np.ndarray, predictor: Predictor) -> np.ndarray:
    key = _main_key(predictor)   # TFLite keeps a dict of outputs in the sorted order of its keys
    return tflite_probabilities(path, batch, sorted(output_keys(list(predictor.tasks)).values()).index(key)
                                if key else 0)


def _onnx(path: Path, batch: np.ndarray, predictor: Predictor) -> np.ndarray:
    return onnx_probabilities(path, batch, _main_key(predictor) or OUTPUT_NAME)


# One runner per runtime of export_formats.PARITY_RUNTIMES: (exported path, batch, predictor) -> probabilities.
RUNNERS: dict[str, Callable[[Path, np.ndarray, Predictor], np.ndarray]] = {
    "keras": _keras, "tensorflow": _savedmodel, "tflite": _tflite, "onnxruntime": _onnx}


def _fresh(path: Path, model_file: Path) -> bool:
    return path.exists() and path.stat().st_mtime >= model_file.stat().st_mtime


def _accuracy(probs: np.ndarray, truth: np.ndarray) -> float | None:
    known = truth >= 0
    return float(np.mean(probs[known].argmax(1) == truth[known])) if known.any() else None


def _row(entry: FormatEntry, reference: np.ndarray, probs: np.ndarray, names: list[str],
         truth: np.ndarray) -> dict:
    differ = np.flatnonzero(reference.argmax(1) != probs.argmax(1))
    share = len(differ) / max(1, len(reference))
    return {"format": entry.name, "title": entry.title, "file": entry.artifact, "runtime": entry.runtime,
            "agree": 1.0 - share, "disagree": int(len(differ)),
            "max_abs_diff": float(np.max(np.abs(reference - probs))) if len(probs) else 0.0,
            "accuracy": _accuracy(probs, truth), "flag_at": entry.flag_at, "flagged": share > entry.flag_at,
            "images": [names[i] for i in differ[:LISTED_IMAGES]]}


def parity_matrix(run_dir: str | Path, max_images: int = PARITY_IMAGES,
                  formats: list[str] | None = None, split: str = "test") -> dict:
    """Compare every format (or ``formats``) with the studio's model on the ``split`` images (else all images);
    writes and returns ``run_dir/parity.json`` ({n, split, ok, reference_accuracy, rows: [...]})."""
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    dataset = run_dataset(run_dir)
    samples = (dataset.split(split) or list(dataset.samples))[:max_images]
    result: dict = {"n": len(samples), "split": split if dataset.split(split) else "all", "rows": [],
                    "image_size": predictor.image_size}
    if not samples:
        result.update(ok=False, note="There are no images to compare on: import data with a test split.")
        atomic_write(run_dir / "parity.json", json.dumps(result, indent=2))
        return result
    entries = [e for e in parity_formats() if formats is None or e.name in formats]
    exports, model_file = run_dir / "exports", run_dir / "model.keras"
    missing = [e.name for e in entries if not _fresh(exports / e.artifact, model_file)]
    if missing:
        export_all(run_dir, exports, missing)
    paths = [s.path for s in samples]
    names = [Path(p).name for p in paths]
    index = {c: i for i, c in enumerate(predictor.classes)}
    truth = np.array([index.get(s.label, -1) for s in samples])
    batch = predictor.prepare(paths)
    reference = batched_call(predictor.model, batch)
    result["reference_accuracy"] = _accuracy(reference, truth)
    for entry in entries:
        try:
            probs = RUNNERS[entry.runtime](exports / entry.artifact, batch, predictor)
        except TLError as exc:
            result["rows"].append({"format": entry.name, "title": entry.title, "file": entry.artifact,
                                   "runtime": entry.runtime, "flagged": True, "error": str(exc)})
            continue
        result["rows"].append(_row(entry, reference, probs, names, truth))
    result["ok"] = not any(row["flagged"] for row in result["rows"])
    atomic_write(run_dir / "parity.json", json.dumps(result, indent=2))
    return result
