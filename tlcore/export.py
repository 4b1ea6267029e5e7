"""Exporting a trained run: .keras, SavedModel (TF Serving), TFLite (float32, float16, int8), ONNX and a web page,
with a model card. The parity matrix is :mod:`tlcore.parity`, the one-zip bundle :mod:`tlcore.bundle`.

Every export is written into a hidden staging folder inside ``out_dir`` and moved into place with ``os.replace``
only when complete, so a crash or a full disk never leaves a half-written file where a good one is expected.

TFLite models take one image of fixed shape (1, size, size, 3), float32 RGB pixels 0-255, already resized to
``size`` (bilinear, as in training; the size is in config.json and the model card); they return float32
softmax probabilities in labels.txt order. The .keras and SavedModel exports take any image size.

The formats are the table in :mod:`tlcore.export_formats`; each entry names its writer here (``write_*``).
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .artifacts import load_labels, load_run_config
from .errors import DataError, ExportError, TLError
from .export_formats import EXPORT_FORMATS, FormatEntry, check_formats, format_entry
from .model_card import model_card
from .pipeline import image_dataset
from .predict import download_name, load_run_model, model_image_size  # noqa: F401 - download_name for pages
from .run_data import run_dataset
from .runs import atomic_write
from .tf_env import keras, tf

FORMATS = tuple(EXPORT_FORMATS)                                    # the table is tlcore.export_formats
ARTIFACTS = {name: e.artifact for name, e in EXPORT_FORMATS.items()}
SIDE_FILES = ("labels.txt", "config.json", "model_card.md")
REPRESENTATIVE_IMAGES = 100
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


# -- low-level writers (tests replace these to simulate a full disk) ------------------------------------------
def _dump(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` (inside the staging folder)."""
    with open(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


# -- staging and errors ---------------------------------------------------------------------------------------
def _is_no_space(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno in _NO_SPACE) or "No space left on device" in str(exc)


@contextlib.contextmanager
def _staging(out_dir: Path, step: list[str]) -> Iterator[Path]:
    """A hidden folder in ``out_dir``, removed at the end; failures become ExportError with the fix."""
    stage = None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
        yield stage
    except TLError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported as one sentence
        what = step[0] if step else "the model"
        if _is_no_space(exc):
            raise ExportError(f"Not enough disk space to export {what} to {out_dir}: "
                              "free some space and try again.") from exc
        if isinstance(exc, OSError):
            raise ExportError(f"The {what} export could not be written to {out_dir} ({exc.strerror or exc}): "
                              "check that the folder is writable and try again.") from exc
        raise ExportError(f"The {what} export failed ({type(exc).__name__}: {str(exc)[:200]}): "
                          "export as keras or savedmodel instead, or report the problem.") from exc
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move finished files and folders from the staging folder into ``out_dir`` (renames only)."""
    for name in names:
        src, dst = stage / name, out_dir / name
        if src.is_dir():
            if dst.exists():
                os.replace(dst, stage / f".old-{name}")   # a folder cannot be replaced in one rename
            os.replace(src, dst)
        else:
            os.replace(src, dst)


# -- converters -----------------------------------------------------------------------------------------------
def frozen_function(model: keras.Model, size: int):
    """The model as a graph function on input (1, size, size, 3) with its weights folded in as constants:
    the TFLite converters' common source (about 5x faster to convert than a SavedModel, and int8-calibratable)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((1, size, size, 3), tf.float32, name="image")
    concrete = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    return convert_variables_to_constants_v2(concrete)


def representative_images(run_dir: Path, size: int, limit: int = REPRESENTATIVE_IMAGES) -> Callable[[], Iterator]:
    """Up to ``limit`` training images (seeded sample, all classes), resized as in training, one per batch."""
    try:
        samples = run_dataset(run_dir).split("train")
    except DataError as exc:
        raise ExportError("The int8 export calibrates on the run's training images, which are not available "
                          f"({str(exc).rstrip('.')}): import the data again, or export tflite-float16 instead.") from exc
    if not samples:
        raise ExportError("The int8 export needs training images to calibrate, but the run has none: "
                          "export tflite-float16 instead.")
    rng = np.random.default_rng(0)
    picks = sorted(rng.choice(len(samples), min(limit, len(samples)), replace=False))
    paths = [samples[i].path for i in picks]

    def generate() -> Iterator[list[np.ndarray]]:
        for batch in image_dataset(paths, None, size, 1):
            yield [batch.numpy().astype("float32")]

    return generate


def convert_tflite(function, fmt: str, representative: Callable[[], Iterator] | None = None) -> bytes:
    """Convert a :func:`frozen_function` to TFLite: float32, float16 weights, or int8 (float input/output kept),
    as the entry of ``fmt`` says (``quantize``)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    quantize = format_entry(fmt).quantize
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "Statistics for quantized inputs were expected" is expected here
        return converter.convert()


# -- writers (named by the entries of tlcore.export_formats) ---------------------------------------------------
@dataclass
class ExportJob:
    """What the writers of one export share: the run, its loaded model (None when no format needs it), the
    image size, and the TFLite conversion source, made once for all TFLite variants."""

    run_dir: Path
    model: Any
    size: int
    _source: Any = None
    cache: dict = field(default_factory=dict)   # what several writers share (the ONNX conversion)

    @property
    def source(self):
        """The :func:`frozen_function` of the model (made on first use)."""
        if self._source is None:
            self._source = frozen_function(self.model, self.size)
        return self._source


def write_keras(job: ExportJob, entry: FormatEntry, target: Path) -> None:
    """The run's model.keras, copied as it is."""
    _copy(job.run_dir / "model.keras", target)


def write_savedmodel(job: ExportJob, entry: FormatEntry, target: Path) -> None:
    """A SavedModel folder with a ``serve`` endpoint (TensorFlow Serving)."""
    job.model.export(str(target), verbose=False)


def write_tflite(job: ExportJob, entry: FormatEntry, target: Path) -> None:
    """A .tflite file, quantized as the entry says (int8 calibrates on the run's training images)."""
    rep = representative_images(job.run_dir, job.size) if "training_images" in entry.needs else None
    _dump(target, convert_tflite(job.source, entry.name, rep))


# -- public API -----------------------------------------------------------------------------------------------
def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path) -> Path:
    """Export one format into ``out_dir`` (plus labels.txt, config.json, model_card.md); returns the artifact."""
    return export_all(run_dir, out_dir, [fmt])[format_entry(fmt).name]   # "tfjs" is the web entry's alias


def export_all(run_dir: str | Path, out_dir: str | Path, formats: Sequence[str] = FORMATS) -> dict[str, Path]:
    """Export several formats at once (the TFLite variants share one conversion source) → {format: path}."""
    entries = [EXPORT_FORMATS[f] for f in check_formats(formats)]
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    only_copy = all(e.needs == ("model_file",) for e in entries) and (run_dir / "model.keras").is_file()
    model = None if only_copy else load_run_model(run_dir)   # a plain copy needs no loading
    labels = load_labels(run_dir)
    config = load_run_config(run_dir)
    size = model_image_size(model, config)
    job = ExportJob(run_dir, model, size)
    step: list[str] = []
    with _staging(out_dir, step) as stage:
        for entry in entries:
            step[:] = [entry.name]
            entry.write_function()(job, entry, stage / entry.artifact)
        step[:] = ["the model card"]
        _dump(stage / "labels.txt", "\n".join(labels) + "\n")
        _dump(stage / "config.json", (run_dir / "config.json").read_text(encoding="utf-8"))
        _dump(stage / "model_card.md", model_card(run_dir, image_size=size, labels=labels))
        _publish(stage, out_dir, [e.artifact for e in entries] + list(SIDE_FILES))
    return {e.name: out_dir / e.artifact for e in entries}


def zip_dir(path: str | Path, dest: str | Path | None = None) -> bytes | Path:
    """A folder (e.g. the SavedModel) as zip bytes, or written atomically to ``dest`` (returns ``dest``)."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"{path.name} is not an exported folder: export it first.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, Path(path.name) / file.relative_to(path))
    if dest is None:
        return buffer.getvalue()
    try:
        atomic_write(Path(dest), buffer.getvalue())
    except OSError as exc:
        if _is_no_space(exc):
            raise ExportError(f"Not enough disk space to write {Path(dest).name}: free some space and try again.") from exc
        raise ExportError(f"{Path(dest).name} could not be written ({exc.strerror or exc}): "
                          "check that the folder is writable.") from exc
    return Path(dest)


# -- parity ---------------------------------------------------------------------------------------------------
def tflite_interpreter(path: str | Path):
    """A LiteRT interpreter (``ai_edge_litert``, the successor of the ``tf.lite.Interpreter`` that TF 2.21
    deprecates; tf.lite's, without its warning, only where ai-edge-litert is not installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def tflite_probabilities(path: str | Path, batch: np.ndarray, output: int = 0) -> np.ndarray:
    """Run a .tflite model image by image over a float32 batch (N, size, size, 3) → (N, classes), from its
    ``output``-th output (a multi-task model's outputs come in the sorted order of their keys)."""
    interpreter = tflite_interpreter(path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[output]
    if tuple(inp["shape"]) != (1,) + batch.shape[1:]:
        interpreter.resize_tensor_input(inp["index"], (1,) + batch.shape[1:])
        interpreter.allocate_tensors()
    rows = []
    for image in batch:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        rows.append(np.array(interpreter.get_tensor(out["index"])[0], dtype="float32"))
    return np.stack(rows) if rows else np.zeros((0, 0), "float32")
