"""ONNX: the model converted with tf2onnx, and run with onnxruntime (the real client) for the parity check.

The ONNX file takes one input, ``image``: float32 RGB pixels 0-255, shape (batch, height, width, 3). Batch and
image size are both dynamic: the model's own Resizing layer (bilinear, as in training) is part of the graph, so
an image of any size works, and an image already at the model's size (the model card gives it) skips nothing
and answers exactly as the studio does. Its output, ``probabilities``, is (batch, classes) in labels.txt order.
A multi-task model keeps one output per label column, named after the column's output key.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError
from .tf_env import keras, tf

OPSET = 17               # onnxruntime 1.17+ and onnxruntime-web run it
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
DYNAMIC = {"batch": True, "image_size": True}   # what the model card and the page say about the input


def _rename_outputs(proto, names: list[str]) -> None:
    """Give the graph's outputs readable names (tf2onnx calls them ``Identity:0`` …)."""
    for output, name in zip(proto.graph.output, names):
        old = output.name
        for node in proto.graph.node:
            node.output[:] = [name if o == old else o for o in node.output]
        output.name = name


def onnx_bytes(model: keras.Model) -> bytes:
    """The model as an ONNX file (opset :data:`OPSET`), input ``image`` (N, H, W, 3) float32 pixels 0-255."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise ExportError("The ONNX export needs the tf2onnx package, which is not installed: "
                          "run `pip install -r requirements.txt`, or export another format.") from exc
    spec = (tf.TensorSpec((None, None, None, 3), tf.float32, name=INPUT_NAME),)
    outputs = model.output
    keys = sorted(outputs) if isinstance(outputs, dict) else None

    @tf.function
    def function(image):
        out = model(image, training=False)
        return [out[k] for k in keys] if keys else out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=OPSET)
    _rename_outputs(proto, keys or [OUTPUT_NAME])
    return proto.SerializeToString()


def job_onnx(job: Any, model: keras.Model | None = None) -> bytes:
    """:func:`onnx_bytes` of ``model`` (default the job's), converted once per export (``job.cache``)."""
    model = job.model if model is None else model
    key = ("onnx", id(model))
    if key not in job.cache:
        job.cache[key] = onnx_bytes(model)
    return job.cache[key]


def write_onnx(job: Any, entry: Any, target: Path) -> None:
    """The ONNX writer of :mod:`tlcore.export_formats` (``job`` is a :class:`tlcore.export.ExportJob`)."""
    target.write_bytes(job_onnx(job))


def onnx_session(path: str | Path | bytes):
    """An onnxruntime session on the CPU, for an ONNX file (or its bytes)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("Checking the ONNX file needs onnxruntime, which is not installed: "
                          "run `pip install -r requirements.txt`.") from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_probabilities(path: str | Path, batch: np.ndarray, output: str = OUTPUT_NAME) -> np.ndarray:
    """Run the ONNX file over a float32 batch (N, H, W, 3) → (N, classes) from ``output`` (else the first)."""
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    name = output if output in names else names[0]
    rows = [session.run([name], {INPUT_NAME: batch[i:i + 32].astype("float32")})[0]
            for i in range(0, len(batch), 32)]
    return np.concatenate(rows).astype("float32") if rows else np.zeros((0, 0), "float32")
