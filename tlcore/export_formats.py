"""The export formats: what each one is, needs and produces, and which function writes it, as plain data (no TF).

:mod:`tlcore.export` writes them, the CLI offers them as ``--format`` choices, and the Export page renders one
row per format from this table (its widget keys are ``export_<name>_button`` and ``download_<name>``). Adding a
format is one :class:`FormatEntry` here, plus its writer function (in :mod:`tlcore.export` or a module of its
own) when no existing one fits; a new TFLite variant needs only the entry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import ConfigError

# What an export may need from the run (keys of FormatEntry.needs).
NEEDS = {
    "model_file": "the run's trained model.keras, copied as it is (the model is not loaded)",
    "model": "the trained model, loaded",
    "training_images": "the run's training images, to calibrate the quantization",
}
# Which runtime loads an artifact (FormatEntry.runtime).
RUNTIMES = {
    "keras": "Keras 3: keras.saving.load_model(path)",
    "tensorflow": "TensorFlow: tf.saved_model.load(path), TensorFlow Serving",
    "tflite": "TensorFlow Lite / LiteRT: an Interpreter (input (1, size, size, 3) float32, pixels 0-255)",
    "onnxruntime": "ONNX Runtime: onnxruntime.InferenceSession(path) (input image: (N, H, W, 3) float32, 0-255)",
    "onnxruntime-web": "a browser: index.html runs model.onnx with onnxruntime-web (serve the folder over http)",
}
# The runtimes the parity check runs in Python and compares with the studio's model (the web page runs the
# same model.onnx as the onnx row; the tests check it in Node and in Chromium).
PARITY_RUNTIMES = ("keras", "tensorflow", "tflite", "onnxruntime")
# Other names accepted for a format (the CLI's --format, export_all): TensorFlow.js cannot be installed beside
# TensorFlow 2.21 (see tlcore.web_export), so "tfjs" gives the web page on onnxruntime-web.
ALIASES = {"tfjs": "web"}
# What a disagreement rate above which a format is flagged in the parity matrix: 1%, and 3% for int8.
FLAG_AT = {"default": 0.01, "int8": 0.03}


@dataclass(frozen=True)
class FormatEntry:
    """One export format.

    ``writer`` is ``"module:function"``, imported when used and called as ``function(job, entry, target)``
    (see :class:`tlcore.export.ExportJob`). ``folder`` says the artifact is a folder (the page offers it
    zipped); ``quantize`` is the TFLite weight type (None: float32).
    """

    name: str
    title: str
    artifact: str
    text: str
    runtime: str
    writer: str
    mime: str = "application/octet-stream"
    folder: bool = False
    needs: tuple[str, ...] = ("model",)
    quantize: str | None = None

    @property
    def flag_at(self) -> float:
        """The share of images on which this format may disagree with the studio before it is flagged."""
        return FLAG_AT.get(self.quantize or "", FLAG_AT["default"])

    @property
    def download(self) -> str:
        """The file the page offers: the artifact, or ``<artifact>.zip`` for a folder."""
        return f"{self.artifact}.zip" if self.folder else self.artifact

    @property
    def key(self) -> str:
        """The name as a JSON key (parity.json: ``<key>_agree``)."""
        return self.name.replace("-", "_")

    def write_function(self) -> Callable:
        """The function that writes this format (imported now)."""
        module, name = self.writer.split(":")
        return getattr(importlib.import_module(module), name)


EXPORT_FORMATS: dict[str, FormatEntry] = {e.name: e for e in (
    FormatEntry("keras", "Keras model (.keras)", "model.keras",
                "For Python with Keras 3. Takes raw RGB images of any size.",
                "keras", "tlcore.export:write_keras", needs=("model_file",)),
    FormatEntry("savedmodel", "TensorFlow SavedModel (.zip)", "saved_model",
                "For TensorFlow Serving and other TensorFlow tools.",
                "tensorflow", "tlcore.export:write_savedmodel", mime="application/zip", folder=True),
    FormatEntry("tflite", "TFLite float32 (.tflite)", "model.tflite",
                "For Android, iOS and small devices; the same accuracy as the Keras model.",
                "tflite", "tlcore.export:write_tflite"),
    FormatEntry("tflite-float16", "TFLite float16 (.tflite)", "model_float16.tflite",
                "Half the size of float32, nearly the same accuracy.",
                "tflite", "tlcore.export:write_tflite", quantize="float16"),
    FormatEntry("tflite-int8", "TFLite int8 (.tflite)", "model_int8.tflite",
                "A quarter of the size and fastest on small devices; may lose a little accuracy.",
                "tflite", "tlcore.export:write_tflite", needs=("model", "training_images"), quantize="int8"),
    FormatEntry("onnx", "ONNX (.onnx)", "model.onnx",
                "For ONNX Runtime in any language (Python, C#, Java, C++, JavaScript). Any image size and batch.",
                "onnxruntime", "tlcore.onnx_export:write_onnx"),
    FormatEntry("web", "Web page (.zip)", "web",
                "A page that classifies a dropped image in the browser (ONNX Runtime Web); serve the folder "
                "over http.", "onnxruntime-web", "tlcore.web_export:write_web", mime="application/zip",
                folder=True),
)}


def format_entry(name: str) -> FormatEntry:
    """The entry called ``name``; an unknown name raises ConfigError listing the valid ones."""
    return EXPORT_FORMATS[check_formats([name])[0]]


def check_formats(formats: str | Sequence[str]) -> list[str]:
    """The formats without repeats, in order; an unknown one (or none) raises ConfigError listing the valid ones."""
    formats = [formats] if isinstance(formats, str) else list(formats)
    formats = list(dict.fromkeys(ALIASES.get(f, f) for f in formats))
    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad or not formats:
        raise ConfigError(f"Unknown export format {', '.join(map(repr, bad)) or '(none given)'}: "
                          f"choose one of {', '.join(EXPORT_FORMATS)}.")
    return formats


def parity_formats() -> list[FormatEntry]:
    """The formats the parity check compares with the studio's model, in table order."""
    return [e for e in EXPORT_FORMATS.values() if e.runtime in PARITY_RUNTIMES]
