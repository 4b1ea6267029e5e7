"""The one batched loop that runs a model over images, and the image preparation that feeds it.

- :func:`over_files`: image files streamed through the training input pipeline (tf.io decode and resize), batch by
  batch. Evaluation, multi-task evaluation, embedding maps and the training feature cache all use it.
- :func:`batched_call`: decoded images already in memory (what :func:`prepare_images` makes), in chunks. The
  Predictor, few-shot's new classes and the export parity check use it.

Both return ``(N, ...)`` for a model with one output and ``{output key: (N, ...)}`` for one with a dict of outputs.
"""
from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from . import images as image_io
from .errors import ImageError
from .pipeline import image_dataset, prepare_arrays
from .tf_env import keras, tf

BATCH_SIZE = 32
_CALLS: "weakref.WeakKeyDictionary[keras.Model, Any]" = weakref.WeakKeyDictionary()
_TRACE_FROM = 3   # tracing costs about a second: worth it from a few batches on (then ~2x faster than predict)


def model_call(model: keras.Model, batches: int = _TRACE_FROM) -> Callable[[Any], Any]:
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


def _numpy(out: Any) -> Any:
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _empty(model: keras.Model) -> Any:
    zeros = lambda t: np.zeros((0,) + tuple(t.shape[1:]), "float32")  # noqa: E731
    return {k: zeros(t) for k, t in model.output.items()} if isinstance(model.output, dict) else zeros(model.output)


def _concat(chunks: list, model: keras.Model) -> Any:
    if not chunks:
        return _empty(model)
    if isinstance(chunks[0], dict):
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return np.concatenate(chunks)


def over_files(model: keras.Model, paths: Sequence[str], image_size: int, batch_size: int = BATCH_SIZE, *,
               calls: Sequence[Callable[[Any], Any]] | None = None, before_batch: Callable[[], None] | None = None,
               after_batch: Callable[[int, int], None] | None = None) -> Any:
    """Outputs of ``model`` for image files, decoded and resized exactly as in training, in file order.

    With ``calls`` given, ``model`` only shapes an empty result (a layer will do). ``calls``: one function per pass over the files (default: one pass of :func:`model_call`), their outputs
    concatenated pass after pass. ``before_batch()`` runs before each batch (it may raise to stop early);
    ``after_batch(done, total)`` after each one, counting batches over all passes.
    """
    paths = list(paths)
    steps = -(-len(paths) // batch_size)
    calls = [model_call(model, steps)] if calls is None else list(calls)
    ds = image_dataset(paths, None, image_size, batch_size)
    chunks, done, total = [], 0, steps * len(calls)
    for call in calls:
        for batch in ds:
            if before_batch is not None:
                before_batch()
            chunks.append(_numpy(call(batch)))
            done += 1
            if after_batch is not None:
                after_batch(done, total)
    return _concat(chunks, model)


def batched_call(model: keras.Model, batch: np.ndarray, batch_size: int = BATCH_SIZE) -> Any:
    """Run ``model`` over a prepared float32 batch (N, size, size, 3) in chunks (see :func:`model_call`)."""
    chunks = [batch[i:i + batch_size] for i in range(0, len(batch), batch_size)]
    call = model_call(model, len(chunks))
    return _concat([_numpy(call(tf.convert_to_tensor(chunk))) for chunk in chunks], model)


# -- images in memory ---------------------------------------------------------------------------------------
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


def as_list(images: Any) -> list:
    """One image or several (list, tuple, or an (N, H, W, 3) array) → a list of images."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    return [images]


def name_of(image: Any, index: int) -> str:
    """How an error names the ``index``-th image: its file name, else "image <n>"."""
    return Path(image).name if isinstance(image, (str, Path)) else f"image {index + 1}"


def stack(resized: list[np.ndarray], size: int) -> np.ndarray:
    """Resized images → one float32 batch (an empty one of the right shape when there are none)."""
    return np.stack(resized) if resized else np.zeros((0, size, size, 3), "float32")


def resize(array: np.ndarray, image_size: int) -> np.ndarray:
    """One decoded image → float32 (size, size, 3), resized exactly as in training."""
    return prepare_arrays([array], image_size)[0]


def prepare_images(images: Any, image_size: int) -> np.ndarray:
    """Decode and resize images one at a time (big photos never pile up) → float32 batch (N, size, size, 3)."""
    items = as_list(images)
    return stack([resize(to_rgb_array(img, name_of(img, i)), image_size) for i, img in enumerate(items)], image_size)
