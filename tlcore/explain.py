"""Grad-CAM heat maps: which parts of an image drove a prediction (Selvaraju et al., 2017)."""
from __future__ import annotations

import weakref

import numpy as np

from .errors import ConfigError
from .tf_env import keras, tf

_GRAD_MODELS: "weakref.WeakKeyDictionary[keras.Model, keras.Model]" = weakref.WeakKeyDictionary()


def _grad_model(model: keras.Model) -> keras.Model:
    """Raw pixels → [last backbone feature map, class probabilities], built once per model."""
    grad_model = _GRAD_MODELS.get(model)
    if grad_model is None:
        try:
            # The pool layer's input is the backbone's output *in this model's graph*
            # (``get_layer("backbone").output`` would be the nested model's own output tensor).
            features = model.get_layer("pool").input
        except ValueError:
            raise ConfigError("Grad-CAM needs a model built by the studio (with a 'pool' layer after the backbone); "
                              "use a run's model.keras.") from None
        grad_model = keras.Model(model.inputs[0], [features, model.outputs[0]], name="gradcam")
        _GRAD_MODELS[model] = grad_model
    return grad_model


def gradcam(model: keras.Model, image: np.ndarray, class_index: int | None = None) -> np.ndarray:
    """Heat map (H, W) in [0, 1] at the image's own size for ``class_index`` (default: the predicted class).

    ``image`` is an RGB array (uint8 or float 0-255) of any size; the model resizes it as in training.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ConfigError(f"Grad-CAM needs one RGB image of height × width × 3, not an array of shape {image.shape}.")
    height, width = image.shape[:2]
    x = tf.convert_to_tensor(image[None].astype("float32"))
    grad_model = _grad_model(model)
    with tf.GradientTape() as tape:
        features, probs = grad_model(x, training=False)
        index = int(tf.argmax(probs[0])) if class_index is None else int(class_index)
        score = probs[:, index]
    grads = tape.gradient(score, features)
    if grads is None:
        return np.zeros((height, width), dtype="float32")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)        # one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]   # (h, w)
    peak = float(tf.reduce_max(cam))
    cam = cam / peak if peak > 0 else tf.zeros_like(cam)
    heat = tf.image.resize(cam[..., None], (height, width), method="bilinear")[..., 0]
    return np.clip(heat.numpy(), 0.0, 1.0).astype("float32")


def colormap(values: np.ndarray) -> np.ndarray:
    """A jet-like colormap: values in [0, 1] → RGB floats in [0, 1] (blue → cyan → yellow → red)."""
    v = np.clip(np.asarray(values, dtype="float32"), 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype="float32")            # red, green, blue peaks
    return np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend a heat map (resized to the image if needed) over an RGB image → uint8 HxWx3."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype("float32")
    heat = np.asarray(heatmap, dtype="float32")
    if heat.shape != image.shape[:2]:
        heat = tf.image.resize(heat[..., None], image.shape[:2], method="bilinear").numpy()[..., 0]
    colours = colormap(heat) * 255.0
    blended = (1.0 - alpha) * image + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
