"""tf.data input pipelines from files on disk, and the augmentation layers."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .config import AugmentConfig  # noqa: F401 - defined with RunConfig (no TensorFlow there)
from .tf_env import keras, tf

AUTOTUNE = tf.data.AUTOTUNE


def augmentation(cfg: AugmentConfig, seed: int | None = None) -> keras.Sequential | None:
    """The augmentation block, or None when off. Pixel values stay in 0-255."""
    if not cfg.enabled:
        return None
    L = keras.layers
    steps: list[Any] = []
    if cfg.flip:
        steps.append(L.RandomFlip("horizontal", seed=seed))
    if cfg.rotation:
        steps.append(L.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed))
    if cfg.zoom:
        steps.append(L.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed))
    if cfg.translation:
        steps.append(L.RandomTranslation(cfg.translation, cfg.translation, fill_mode="reflect", seed=seed))
    if cfg.contrast:
        steps.append(L.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed))
    if cfg.brightness:
        steps.append(L.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed))
    return keras.Sequential(steps, name="augment")


def decode_file(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read, decode (first frame, 3 channels) and resize one image file to float32 0-255."""
    return decode_bytes(tf.io.read_file(path), image_size)


def decode_bytes(raw: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode (first frame, 3 channels) and resize one encoded image to float32 0-255: the training pixels.

    Training (:func:`image_dataset`) and prediction (:func:`tlcore.calls.over_images`) both decode with it.
    """
    image = tf.io.decode_image(raw, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return resize_pixels(image, image_size)


def resize_pixels(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """One decoded RGB image (any dtype) → float32 (size, size, 3), bilinear, exactly as training resizes."""
    return tf.image.resize(image, (image_size, image_size))


def image_dataset(paths: Sequence[str], labels: Any = None, image_size: int = 224, batch_size: int = 32, *,
                  shuffle: bool = False, seed: int = 0, weights: np.ndarray | None = None) -> tf.data.Dataset:
    """Stream images from disk: parallel decode and resize, batching and prefetch. Memory does not grow with size.

    ``labels`` may be None, an array, or a dict of arrays (one per task); ``weights`` adds per-sample weights.
    """
    parts: list[Any] = [tf.constant(list(paths), dtype=tf.string)]
    if labels is not None:
        parts.append(labels)
    if weights is not None:
        parts.append(np.asarray(weights, dtype="float32"))
    ds = tf.data.Dataset.from_tensor_slices(tuple(parts) if len(parts) > 1 else parts[0])
    if shuffle:
        ds = ds.shuffle(max(1, len(paths)), seed=seed, reshuffle_each_iteration=True)

    def load(path, *rest):
        image = decode_file(path, image_size)
        return (image, *rest) if rest else image

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def prepare_arrays(images: Sequence[np.ndarray], image_size: int) -> np.ndarray:
    """Resize decoded RGB arrays exactly as the training pipeline does, into one float32 batch."""
    resized = [resize_pixels(tf.convert_to_tensor(img), image_size).numpy() for img in images]
    return np.stack(resized).astype("float32") if resized else np.zeros((0, image_size, image_size, 3), "float32")
