"""Backbone → head → model, and the freeze helpers (the Keras transfer-learning guide's rules, in code)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from .backbones import BackboneSpec
from .config import FreezeConfig, HeadConfig  # noqa: F401 - defined with RunConfig (no TensorFlow there)
from .errors import ConfigError
from .tf_env import keras

layers = keras.layers

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype="float32")
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype="float32")
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype="float32")


@dataclass
class LayerInfo:
    index: int
    name: str
    type: str
    block: str
    params: int
    trainable: bool


@dataclass
class FreezeSummary:
    """What a freeze setting did. ``frozen_layers`` counts the layers the setting froze (so "Train every layer"
    gives 0 and "Train only the top 20" gives total − 20); ``batchnorm_kept`` counts the BatchNorm layers among the
    others, which stay frozen in inference mode anyway (the Keras transfer-learning guide's rule)."""

    trainable_params: int
    frozen_params: int
    frozen_layers: int
    total_layers: int
    batchnorm_kept: int = 0
    trainable_layers: int = 0       # layers with weights that will actually change

    def as_dict(self) -> dict:
        return asdict(self)


def preprocessing_layer(spec: BackboneSpec | None) -> layers.Layer | None:
    """A standard Keras layer that does ``spec.preprocess_input`` inside the model (no Lambda, so safe_mode loads it)."""
    mode = spec.preprocess_mode if spec else "none"
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")
    if mode == "torch":
        return layers.Rescaling(
            (1.0 / (255.0 * _TORCH_STD)).tolist(), offset=(-_TORCH_MEAN / _TORCH_STD).tolist(), name="preprocess"
        )
    if mode == "caffe":  # RGB → BGR and subtract the ImageNet mean, as a frozen 1×1 convolution
        conv = layers.Conv2D(3, 1, name="preprocess", trainable=False)
        conv.build((None, None, None, 3))
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for out_ch, in_ch in enumerate((2, 1, 0)):
            kernel[0, 0, in_ch, out_ch] = 1.0
        conv.set_weights([kernel, -_CAFFE_MEAN_BGR])
        return conv
    if mode == "none":
        return None
    raise ConfigError(f"Unknown preprocessing mode '{mode}'.")


def build_head(num_classes: int, head: HeadConfig, feature_size: int, name: str = "head") -> keras.Model:
    """The head alone, on pooled features, so it can also train on cached features."""
    inputs = keras.Input((feature_size,), name=f"{name}_features")
    x = inputs
    if head.enabled:
        x = layers.Dense(head.units, activation="relu", name=f"{name}_dense")(x)
        if head.dropout > 0:
            x = layers.Dropout(head.dropout, name=f"{name}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=f"{name}_softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def build_trunk(backbone: keras.Model, spec: BackboneSpec | None, image_size: int,
                augment: keras.Layer | None = None, bn_inference: bool = True) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Raw RGB pixels (0-255, any size) → resize → [augment] → preprocess → backbone(training=False) → pooled.

    ``bn_inference=False`` is only for training from scratch, where BatchNorm must learn its statistics.
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Resizing(image_size, image_size, name="resize")(inputs)
    if augment is not None:
        x = augment(x)
    pre = preprocessing_layer(spec)
    if pre is not None:
        x = pre(x)
    # Transfer: BatchNorm stays in inference mode, even when unfrozen (the Keras guide's rule).
    x = backbone(x, training=False) if bn_inference else backbone(x)
    pooled = layers.GlobalAveragePooling2D(name="pool")(x)
    return inputs, pooled


def build_model(backbone: keras.Model, spec: BackboneSpec | None, num_classes: int, head: HeadConfig,
                image_size: int, augment: keras.Layer | None = None, bn_inference: bool = True) -> keras.Model:
    """The classifier: trunk + head. It takes raw pixels, so an exported model needs no preprocessing code."""
    backbone.name = "backbone"
    inputs, pooled = build_trunk(backbone, spec, image_size, augment, bn_inference)
    outputs = build_head(num_classes, head, pooled.shape[-1])(pooled)
    return keras.Model(inputs, outputs, name="classifier")


def get_backbone(model: keras.Model) -> keras.Model:
    return model.get_layer("backbone")


def feature_model(model: keras.Model) -> keras.Model:
    """Raw pixels → pooled backbone features (the input of the head)."""
    return keras.Model(model.inputs, model.get_layer("pool").output, name="features")


def hidden_model(model: keras.Model) -> keras.Model | None:
    """Raw pixels → the trained hidden layer the classifier reads (DANN's adapter, or the head's Dense layer);
    None when the head has no hidden layer. Beside :func:`feature_model` it shows what training changed."""
    names = {layer.name for layer in model.layers}
    if "adapter" in names:
        return keras.Model(model.inputs, model.get_layer("adapter").output, name="hidden")
    for head in model.layers:
        if isinstance(head, keras.Model) and head.name != "backbone":
            dense = [layer for layer in head.layers if layer.name.endswith("_dense")]
            if dense and "pool" in names:
                return keras.Model(model.inputs, dense[0](model.get_layer("pool").output), name="hidden")
    return None


_BLOCK_PATTERNS = [
    (re.compile(r"^(block\d+)"), "{0}"),                      # VGG, Xception, EfficientNet
    (re.compile(r"^(conv\d+)_block"), "{0}"),                 # ResNet, DenseNet stages
    (re.compile(r"^(pool\d+)_"), "{0}"),                      # DenseNet transitions
    (re.compile(r"^block_(\d+)_"), "block {0}"),              # MobileNetV2
    (re.compile(r"^conv_(?:dw|pw)_(\d+)"), "block {0}"),      # MobileNet
    (re.compile(r"^expanded_conv_(\d+)_"), "block {0}"),      # MobileNetV3
    (re.compile(r"^expanded_conv_"), "block 0"),
    (re.compile(r"stage_(\d+)"), "stage {0}"),                # ConvNeXt
    (re.compile(r"^(mixed\d+)"), "{0}"),                      # InceptionV3
]


def _block_of(name: str, previous: str) -> str:
    for pattern, fmt in _BLOCK_PATTERNS:
        match = pattern.search(name)
        if match:
            return fmt.format(*match.groups())
    return previous


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def list_layers(backbone: keras.Model) -> list[LayerInfo]:
    """The backbone's layers with name, type, block, parameter count and whether each trains."""
    infos, block = [], "stem"
    for i, layer in enumerate(backbone.layers):
        block = _block_of(layer.name, block)
        infos.append(LayerInfo(i, layer.name, type(layer).__name__, block, _count(layer.weights),
                               bool(layer.trainable and layer.trainable_weights)))
    return infos


def _frozen_count(backbone: keras.Model, cfg: FreezeConfig) -> int:
    total = len(backbone.layers)
    if cfg.mode == "all":
        return total
    if cfg.mode == "none":
        return 0
    if cfg.mode == "first_n":
        return max(0, min(int(cfg.n), total))
    if cfg.mode == "all_but_top":
        return max(0, total - int(cfg.n))
    if cfg.mode == "up_to":
        infos = list_layers(backbone)
        hits = [i.index for i in infos if cfg.layer in (i.name, i.block)]
        if not hits:
            blocks = list(dict.fromkeys(i.block for i in infos))
            raise ConfigError(f"There is no layer or block named '{cfg.layer}'. Blocks: {', '.join(blocks)}.")
        return hits[-1] + 1
    raise ConfigError(f"Unknown freeze mode '{cfg.mode}'. Choose all, none, first_n, up_to or all_but_top.")


def freeze(backbone: keras.Model, cfg: FreezeConfig, keep_bn_frozen: bool = True) -> FreezeSummary:
    """Freeze the backbone as ``cfg`` says. BatchNorm stays frozen (except from scratch). Recompile afterwards."""
    k = _frozen_count(backbone, cfg)
    backbone.trainable = k < len(backbone.layers)
    for i, layer in enumerate(backbone.layers):
        is_bn = keep_bn_frozen and isinstance(layer, layers.BatchNormalization)
        layer.trainable = backbone.trainable and i >= k and not is_bn
    return summarize(backbone, k)


def summarize(backbone: keras.Model, frozen_by_choice: int | None = None) -> FreezeSummary:
    """Counts for a frozen backbone; ``frozen_by_choice`` is the number of leading layers the setting froze
    (without it: the layers that will not change, BatchNorm included)."""
    trainable = _count(backbone.trainable_weights)
    moving = sum(1 for layer in backbone.layers if layer.trainable and layer.trainable_weights)
    if frozen_by_choice is None:
        frozen_by_choice = sum(1 for layer in backbone.layers if not (layer.trainable and layer.trainable_weights))
    kept = sum(1 for i, layer in enumerate(backbone.layers) if i >= frozen_by_choice
               and isinstance(layer, layers.BatchNormalization) and not layer.trainable)
    return FreezeSummary(trainable, _count(backbone.weights) - trainable, int(frozen_by_choice),
                         len(backbone.layers), kept, moving)


def layer_status(info: LayerInfo, frozen_by_choice: int) -> str:
    """One layer's state in words, for the layer-by-layer list."""
    if info.trainable:
        return "trains"
    if not info.params:
        return "no weights"
    if info.type == "BatchNormalization" and info.index >= frozen_by_choice:
        return "frozen (BatchNorm, inference mode)"
    return "frozen"


def param_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, non-trainable) parameters of a whole model."""
    trainable = _count(model.trainable_weights)
    return trainable, _count(model.weights) - trainable


# -- the freeze boundary (cached fine-tuning) --------------------------------------------------------------
class SplitError(ValueError):
    """The classifier cannot be cut at its freeze boundary; ``str()`` is the reason, in words (for the events)."""


@dataclass
class Split:
    """A classifier cut where its frozen part ends. ``lower`` (raw pixels → the boundary activation: resize,
    [augment], preprocess, the frozen backbone layers) and ``top`` (boundary activation → probabilities: the layers
    that train, pool and head) share the classifier's layer objects, so training ``top`` trains the classifier."""

    boundary: str                 # the backbone layer whose output is cached
    index: int                    # its index in ``backbone.layers``
    shape: tuple[int, ...]        # the activation's shape without the batch axis
    lower: keras.Model
    top: keras.Model

    @property
    def values_per_image(self) -> int:
        return int(np.prod(self.shape))


def first_trained_layer(backbone: keras.Model) -> int:
    """Index of the first backbone layer whose weights will change (``len(layers)`` when none will): every layer
    before it is frozen, or has no weights, or is BatchNorm in inference mode, so its output is fixed."""
    if not backbone.trainable:
        return len(backbone.layers)
    for i, layer in enumerate(backbone.layers):
        if layer.trainable and layer.trainable_weights:
            return i
    return len(backbone.layers)


def split_at_boundary(model: keras.Model) -> Split:
    """Cut a classifier of :func:`build_model` after its last fixed backbone layer (see :func:`first_trained_layer`).

    Works when the backbone is a chain at that point (MobileNet, VGG: always; ResNet-like graphs between their
    blocks). Raises :class:`SplitError` with the reason otherwise. The classifier itself is unchanged: Keras only
    appends call nodes to the shared layers, which the classifier's own graph and saved file leave out.
    """
    names = [layer.name for layer in model.layers]
    if "backbone" not in names or names[names.index("backbone") + 1:] != ["pool", "head"]:
        raise SplitError("the model is not the standard classifier (backbone → pool → head)")
    before = model.layers[1:names.index("backbone")]
    if any(layer.name not in ("resize", "augment", "preprocess") for layer in before):
        raise SplitError("the model has unexpected layers before the backbone")
    backbone = get_backbone(model)
    j = first_trained_layer(backbone)
    if j <= 1:
        raise SplitError("every layer of the backbone trains, so nothing frozen is left to cache")
    cut = backbone.layers[j - 1]
    try:
        boundary = cut.output
    except (AttributeError, ValueError) as exc:
        raise SplitError(f"layer {cut.name} has no single output ({exc})") from None
    if isinstance(boundary, (list, tuple, dict)) or isinstance(backbone.output, (list, tuple, dict)):
        raise SplitError(f"layer {cut.name} has several outputs")
    try:
        frozen = keras.Model(backbone.inputs, boundary, name="frozen_part")
        upper = keras.Model(boundary, backbone.output, name="trained_part") if j < len(backbone.layers) else None
    except ValueError as exc:   # "Graph disconnected": a connection skips over the boundary
        raise SplitError(f"the backbone is not a chain at {cut.name}: a connection skips over it "
                         f"({str(exc).splitlines()[0][:120]})") from None
    image = keras.Input((None, None, 3), name="image")
    x = image
    for layer in before:
        x = layer(x)
    lower = keras.Model(image, frozen(x, training=False), name="lower")
    if any(d is None for d in boundary.shape[1:]):
        raise SplitError(f"the activation of {cut.name} has no fixed size")
    shape = tuple(int(d) for d in boundary.shape[1:])
    features = keras.Input(shape, name="boundary")
    y = upper(features, training=False) if upper is not None else features   # BatchNorm in inference mode
    top = keras.Model(features, model.get_layer("head")(model.get_layer("pool")(y)), name="top")
    return Split(cut.name, j - 1, shape, lower, top)
