"""The one batched loop that runs a model over images, and the image preparation that feeds it.

- :func:`over_files`: image files streamed through the training input pipeline (tf.io decode and resize), batch by
  batch. Evaluation, multi-task evaluation, embedding maps and the training feature cache all use it.
- :func:`over_images`: images given as paths, bytes, PIL images or arrays (the Predictor), decoded and resized in
  parallel with the model's calls, with the pixels training sees; a bad image is reported, not fatal.
- :func:`batched_call`: decoded images already in memory (what :func:`prepare_images` makes), in chunks.
  Few-shot's new classes and the export parity check use it.

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
from .pipeline import decode_bytes, image_dataset, prepare_arrays, resize_pixels
from .tf_env import keras, tf

BATCH_SIZE = 32
_CALLS: "weakref.WeakKeyDictionary[keras.Model, dict[int | None, Any]]" = weakref.WeakKeyDictionary()
_TRACE_FROM = 3   # tracing costs about a second: worth it from a few batches on (then ~2x faster than predict)


def model_call(model: keras.Model, batches: int = _TRACE_FROM, image_size: int | None = None) -> Callable[[Any], Any]:
    """Inference call for ``model``: eager for a batch or two, else one tf.function per model and input size
    (traced once for any batch size, and kept outside the model, so saving and exporting never see it). With
    ``image_size`` the traced input is ``size × size``, so the model's own Resizing layer is skipped, as in an eager
    call; without it any size is taken."""
    calls = _CALLS.get(model) or {}
    fn = calls.get(image_size)
    if fn is None and batches < _TRACE_FROM:
        return lambda x: model(x, training=False)
    if fn is None:
        ref = weakref.ref(model)
        side = int(image_size) if image_size else None
        fn = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True,
                         input_signature=[tf.TensorSpec((None, side, side, 3), tf.float32)])
        _CALLS[model] = {**calls, image_size: fn}
    return fn


def flip_averaged(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Test-time augmentation: the mean of ``call`` on a batch and on its mirror image (left ↔ right)."""
    def averaged(x: Any) -> Any:
        a, b = call(x), call(tf.image.flip_left_right(x))
        if isinstance(a, dict):
            return {k: (a[k] + b[k]) / 2 for k in a}
        return (a + b) / 2

    return averaged


def traced_call(model: keras.Model, image_size: int | None = None) -> Callable[[Any], Any]:
    """The traced inference call of ``model`` (traced on first use; :func:`model_call` then returns it too)."""
    return model_call(model, _TRACE_FROM, image_size)


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
               after_batch: Callable[[int, int], None] | None = None, tta: bool = False) -> Any:
    """Outputs of ``model`` for image files, decoded and resized exactly as in training, in file order.

    With ``calls`` given, ``model`` only shapes an empty result (a layer will do). ``calls``: one function per pass over the files (default: one pass of :func:`model_call`), their outputs
    concatenated pass after pass. ``before_batch()`` runs before each batch (it may raise to stop early);
    ``after_batch(done, total)`` after each one, counting batches over all passes. ``tta``: each call averages the
    image and its mirror image (:func:`flip_averaged`).
    """
    paths = list(paths)
    steps = -(-len(paths) // batch_size)
    calls = [model_call(model, steps, image_size)] if calls is None else list(calls)
    if tta:
        calls = [flip_averaged(c) for c in calls]
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


_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)
_ENCODED = (str, Path, bytes, bytearray, memoryview)


def decoder_input(image: Any, name: str) -> tuple[bytes, np.ndarray]:
    """What the decoder gets for one image: ``(file bytes, empty)`` when TensorFlow decodes them exactly as
    training does (:func:`tlcore.images.tf_readable`), else ``(b"", uint8 RGB array)`` decoded with PIL as the
    import normalises it (EXIF rotation, odd modes, big photos). Raises ImageError naming the image."""
    if isinstance(image, _ENCODED):
        data = image_io.read_bytes(image if isinstance(image, (str, Path)) else bytes(image), name)
        if image_io.tf_readable(data):
            return data, _NO_PIXELS
        return b"", image_io.to_array(image_io.training_rgb(data, name))
    return b"", to_rgb_array(image, name)


def _pil_pixels(image: Any, name: str) -> np.ndarray:
    """The careful way for an image TensorFlow refused: PIL decodes it (or says what is wrong with it)."""
    if isinstance(image, _ENCODED):
        data = image_io.read_bytes(image if isinstance(image, (str, Path)) else bytes(image), name)
        return image_io.to_array(image_io.training_rgb(data, name))
    return to_rgb_array(image, name)


def _decode(data: Any, pixels: Any, image_size: int) -> tf.Tensor:
    """Encoded bytes → decode and resize; else the decoded pixels → resize (float32, size × size × 3)."""
    return tf.cond(tf.strings.length(data) > 0, lambda: decode_bytes(data, image_size),
                   lambda: resize_pixels(pixels, image_size))


def over_images(model: keras.Model, images: Sequence[Any], image_size: int, batch_size: int = BATCH_SIZE, *,
                names: Sequence[str] | None = None, errors: dict[int, ImageError] | None = None,
                tta: bool = False) -> tuple[Any, list[int]]:
    """Outputs of ``model`` for images (paths, bytes, PIL images or arrays) → ``(outputs, indices of the images
    they belong to)``, in input order, with the pixels training sees (:func:`decoder_input`).

    One batch or less is decoded in this thread (the single-image latency is decode + one call). More images stream
    through tf.data: read and checked in order, decoded and resized in parallel while the model runs on the previous
    batch. A bad image goes into ``errors`` (index → ImageError naming it) and is left out of the outputs; with
    ``errors=None`` the first bad image raises its ImageError. ``tta``: as in :func:`over_files`.
    """
    items = list(images)
    labels = list(names) if names is not None else [name_of(img, i) for i, img in enumerate(items)]
    found: dict[int, ImageError] = {}
    steps = -(-len(items) // batch_size)
    call = model_call(model, steps, image_size)
    if tta:
        call = flip_averaged(call)
    chunks, order = [], []
    if steps > 1:
        ds = _stream(items, labels, image_size, batch_size, found)
        for index, batch in ds:
            chunks.append(_numpy(call(batch)))
            order.extend(int(i) for i in index.numpy())
    done = set(order) | set(found)
    rest = [i for i in range(len(items)) if i not in done]   # small inputs, and any image TensorFlow refused
    pixels, kept = [], []
    for i in rest:
        try:
            try:
                data, raw = decoder_input(items[i], labels[i])
                pixels.append((decode_bytes(tf.constant(data), image_size) if data else
                               resize_pixels(tf.convert_to_tensor(raw), image_size)).numpy())
            except tf.errors.OpError:
                pixels.append(resize(_pil_pixels(items[i], labels[i]), image_size))
            kept.append(i)
        except ImageError as exc:
            found[i] = exc
    if found and errors is None:
        raise found[min(found)]
    if errors is not None:
        errors.update(found)
    for start in range(0, len(pixels), batch_size):
        chunks.append(_numpy(call(tf.convert_to_tensor(np.stack(pixels[start:start + batch_size])))))
    order.extend(kept)
    out = _concat(chunks, model)
    if order != sorted(order):
        rank = np.argsort(np.asarray(order), kind="stable")
        out = {k: v[rank] for k, v in out.items()} if isinstance(out, dict) else out[rank]
        order = sorted(order)
    return out, order


def _stream(items: list, labels: list[str], image_size: int, batch_size: int,
            found: dict[int, ImageError]) -> tf.data.Dataset:
    """(indices, float32 batch) for ``items``: checked in order by a generator, decoded in parallel. A bad image
    lands in ``found``; one TensorFlow fails to decode is dropped here and decoded by PIL afterwards."""
    def checked():
        for i, image in enumerate(items):
            try:
                data, pixels = decoder_input(image, labels[i])
            except ImageError as exc:
                found[i] = exc
                continue
            yield i, data, pixels

    signature = (tf.TensorSpec((), tf.int32), tf.TensorSpec((), tf.string), tf.TensorSpec((None, None, 3), tf.uint8))
    ds = tf.data.Dataset.from_generator(checked, output_signature=signature)
    ds = ds.map(lambda i, data, pixels: (i, _decode(data, pixels, image_size)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def batched_call(model: keras.Model, batch: np.ndarray, batch_size: int = BATCH_SIZE) -> Any:
    """Run ``model`` over a prepared float32 batch (N, size, size, 3) in chunks (see :func:`model_call`)."""
    chunks = [batch[i:i + batch_size] for i in range(0, len(batch), batch_size)]
    side = batch.shape[1] if batch.ndim == 4 and batch.shape[1] == batch.shape[2] else None
    call = model_call(model, len(chunks), side)
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
