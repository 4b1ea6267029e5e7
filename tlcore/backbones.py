"""The backbone registry: one table of specs, one ``create_backbone`` that builds from it (timm-style)."""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ConfigError, ModelFileError, WeightsError

if TYPE_CHECKING:   # Keras is imported only when a backbone is built
    from .tf_env import keras


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the product knows about one pretrained backbone (without its ImageNet top)."""

    name: str
    title: str
    constructor_name: str                  # keras.applications.<name>, resolved lazily so the table needs no TF
    preprocess_module: str                 # keras.applications.<module>.preprocess_input
    preprocess_mode: str                   # how the in-model layer reproduces it: tf | torch | caffe | none
    default_size: int
    min_size: int
    params: int                            # parameters without the top, as built by Keras 3.15
    feature_size: int                      # channels of the last feature map (= pooled feature length)
    top1: float                            # ImageNet top-1 accuracy (%) as Keras documents it
    weights_file: str                      # Keras's cache file name (in $KERAS_HOME/models)
    kwargs: dict = field(default_factory=dict)
    note: str = ""

    @property
    def constructor(self) -> Callable[..., Any]:
        from .tf_env import keras

        return getattr(keras.applications, self.constructor_name)

    @property
    def preprocess_input(self) -> Callable[..., Any]:
        """Keras's own preprocess_input for this backbone (the in-model layer reproduces it)."""
        from .tf_env import keras

        return getattr(keras.applications, self.preprocess_module).preprocess_input

    @property
    def size_mb(self) -> float:
        """Approximate size of the float32 weights without top."""
        return round(self.params * 4 / 1e6, 1)


def _mobilenet(alpha: float, text: str, params: int, feat: int, top1: float) -> BackboneSpec:
    return BackboneSpec(
        f"mobilenet_{text}", f"MobileNet α={alpha:g}", "MobileNet", "mobilenet", "tf",
        224, 32, params, feat, top1, "mobilenet_{alpha}_{rows}_tf_no_top.h5", {"alpha": alpha},
        "Tiny and fast on a laptop CPU." if alpha < 0.5 else "",
    )


_SPECS = [
    _mobilenet(0.25, "025", 218_544, 256, 50.6),
    _mobilenet(0.50, "050", 829_536, 512, 63.7),
    _mobilenet(0.75, "075", 1_832_976, 768, 68.4),
    _mobilenet(1.00, "100", 3_228_864, 1024, 70.6),
    BackboneSpec("mobilenetv2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", "tf", 224, 32,
                 2_257_984, 1280, 71.3, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"),
    BackboneSpec("mobilenetv3small", "MobileNetV3 Small", "MobileNetV3Small", "mobilenet_v3",
                 "none", 224, 32, 939_120, 576, 68.1,
                 "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    BackboneSpec("mobilenetv3large", "MobileNetV3 Large", "MobileNetV3Large", "mobilenet_v3",
                 "none", 224, 32, 2_996_352, 960, 75.6,
                 "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
    BackboneSpec("efficientnetb0", "EfficientNet B0", "EfficientNetB0", "efficientnet", "none",
                 224, 32, 4_049_571, 1280, 77.1, "efficientnetb0_notop.h5"),
    BackboneSpec("efficientnetb1", "EfficientNet B1", "EfficientNetB1", "efficientnet", "none",
                 240, 32, 6_575_239, 1280, 79.1, "efficientnetb1_notop.h5"),
    BackboneSpec("efficientnetb2", "EfficientNet B2", "EfficientNetB2", "efficientnet", "none",
                 260, 32, 7_768_569, 1408, 80.1, "efficientnetb2_notop.h5"),
    BackboneSpec("efficientnetb3", "EfficientNet B3", "EfficientNetB3", "efficientnet", "none",
                 300, 32, 10_783_535, 1536, 81.6, "efficientnetb3_notop.h5"),
    BackboneSpec("efficientnetv2b0", "EfficientNetV2 B0", "EfficientNetV2B0", "efficientnet_v2",
                 "none", 224, 32, 5_919_312, 1280, 78.7, "efficientnetv2-b0_notop.h5"),
    BackboneSpec("resnet50", "ResNet50", "ResNet50", "resnet50", "caffe", 224, 32,
                 23_587_712, 2048, 74.9, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("resnet50v2", "ResNet50V2", "ResNet50V2", "resnet_v2", "tf", 224, 32,
                 23_564_800, 2048, 76.0, "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("densenet121", "DenseNet121", "DenseNet121", "densenet", "torch", 224, 32,
                 7_037_504, 1024, 75.0, "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("inceptionv3", "InceptionV3", "InceptionV3", "inception_v3", "tf", 299, 75,
                 21_802_784, 2048, 77.9, "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("xception", "Xception", "Xception", "xception", "tf", 299, 71,
                 20_861_480, 2048, 79.0, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("vgg16", "VGG16", "VGG16", "vgg16", "caffe", 224, 32,
                 14_714_688, 512, 71.3, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                 note="The classic recipe's backbone; large and slow on a CPU."),
    BackboneSpec("vgg19", "VGG19", "VGG19", "vgg19", "caffe", 224, 32,
                 20_024_384, 512, 71.3, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    BackboneSpec("convnexttiny", "ConvNeXt Tiny", "ConvNeXtTiny", "convnext", "none", 224, 32,
                 27_820_128, 768, 81.3, "convnext_tiny_notop.h5"),
]

BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in _SPECS}
DEFAULT_BACKBONE = "mobilenet_025"
_MOBILENET_ROWS = (128, 160, 192, 224)
_ALPHA_TEXT = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}


def get_spec(name: str) -> BackboneSpec:
    """The spec for ``name``; an unknown name raises ConfigError listing the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(
            f"Unknown backbone '{name}'. Choose one of: {', '.join(BACKBONES)}."
        ) from None


def keras_models_dir() -> Path:
    """Keras's own weight cache: ``$KERAS_HOME/models`` (``~/.keras/models`` by default)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def weights_filename(name: str, input_size: int | None = None) -> str:
    """The file name Keras looks for in its cache for ``name``'s ImageNet weights without top."""
    spec = get_spec(name)
    size = input_size or spec.default_size
    rows = size if size in _MOBILENET_ROWS else 224
    alpha = _ALPHA_TEXT.get(spec.kwargs.get("alpha", 1.0), "1_0")
    return spec.weights_file.format(alpha=alpha, rows=rows)


# ImageNet weights shipped with the product (Apache 2.0, Keras Applications; see assets/weights/NOTICE.md):
# Keras's cache file name → sha256. Copied into $KERAS_HOME/models at first use, so the default works offline.
SHIPPED_DIR = Path(__file__).resolve().parent / "assets" / "weights"
SHIPPED_WEIGHTS = {"mobilenet_2_5_224_tf_no_top.h5": "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"}
_log = logging.getLogger(__name__)
_good_files: dict[tuple[str, int, int], str] = {}    # (path, size, mtime_ns) → sha256 already checked


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _good_files:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _good_files[key] = digest.hexdigest()
    return _good_files[key]


def _damaged(title: str, where: Path) -> WeightsError:
    return WeightsError(
        f"The ImageNet weights of {title} that come with the studio are damaged ({where} does not match its "
        "checksum): reinstall the studio (or restore that file from its repository), or choose random initialisation."
    )


def shipped_weights(name: str, input_size: int | None = None) -> Path | None:
    """The shipped copy of ``name``'s ImageNet weights (its file, unchecked), or None when none ships."""
    filename = weights_filename(name, input_size)
    path = SHIPPED_DIR / filename
    return path if filename in SHIPPED_WEIGHTS and path.is_file() else None


def install_shipped_weights(name: str, input_size: int | None = None) -> bool:
    """Put the shipped ImageNet weights of ``name`` into Keras's cache when the cache lacks them (or holds a
    damaged copy): sha256 checked before and after an atomic copy. True when the cache now holds them;
    False when none ship for ``name``; WeightsError when the shipped file is damaged or cannot be copied."""
    filename = weights_filename(name, input_size)
    expected = SHIPPED_WEIGHTS.get(filename)
    if expected is None:
        return False
    title = get_spec(name).title
    source, target = SHIPPED_DIR / filename, keras_models_dir() / filename
    if target.is_file():
        if _sha256(target) == expected:
            return True
        _log.warning("Replacing the damaged cached weights %s with the shipped copy", target)
    if not source.is_file() or _sha256(source) != expected:
        raise _damaged(title, source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if _sha256(Path(tmp)) != expected:
                raise _damaged(title, Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise WeightsError(
            f"The ImageNet weights of {title} could not be copied into Keras's cache {target.parent} "
            f"({exc.strerror or exc}): make that folder writable (or set KERAS_HOME to a writable folder), "
            "or choose random initialisation."
        ) from exc
    if _sha256(target) != expected:
        raise _damaged(title, target)
    return True


def weights_cached(name: str, input_size: int | None = None) -> bool:
    """True when the ImageNet weights for ``name`` are in Keras's cache, or ship with the studio (intact), so
    building with weights='imagenet' needs no download."""
    if (keras_models_dir() / weights_filename(name, input_size)).is_file():
        return True
    shipped = shipped_weights(name, input_size)
    try:
        return shipped is not None and _sha256(shipped) == SHIPPED_WEIGHTS[shipped.name]
    except OSError:
        return False


def resolve_size(name: str, input_size: int | None) -> int:
    """The input size to build with; ConfigError when it is below the backbone's minimum."""
    spec = get_spec(name)
    size = int(input_size or spec.default_size)
    if size < spec.min_size:
        raise ConfigError(
            f"{spec.title} needs images of at least {spec.min_size}×{spec.min_size} pixels; "
            f"choose an input size of {spec.min_size} or more."
        )
    return size


def create_backbone(name: str, weights: str = "imagenet", input_size: int | None = None) -> "keras.Model":
    """Build ``name`` without its top. ``weights`` is 'imagenet', 'none', or a path to a .h5 / .weights.h5 file."""
    spec = get_spec(name)
    size = resolve_size(name, input_size)
    kwargs = dict(spec.kwargs, include_top=False, input_shape=(size, size, 3))
    if weights in ("none", None, "random"):
        return spec.constructor(weights=None, **kwargs)
    if weights == "imagenet":
        return _create_imagenet(spec, size, kwargs)
    model = spec.constructor(weights=None, **kwargs)
    load_weights_file(model, weights, spec.title)
    return model


def _create_imagenet(spec: BackboneSpec, size: int, kwargs: dict) -> "keras.Model":
    install_shipped_weights(spec.name, size)   # the default backbone's weights ship with the product
    cached = (keras_models_dir() / weights_filename(spec.name, size)).is_file()
    old_timeout = socket.getdefaulttimeout()
    if not cached:
        socket.setdefaulttimeout(15)  # a download that cannot connect fails fast, never hangs
    try:
        return spec.constructor(weights="imagenet", **kwargs)
    except Exception as exc:  # Keras raises a plain Exception on a failed fetch
        filename = weights_filename(spec.name, size)
        where = keras_models_dir()
        if cached:
            raise WeightsError(
                f"The cached ImageNet weights for {spec.title} in {where} could not be read ({exc}); "
                f"delete {filename} there and try again, or choose random initialisation."
            ) from exc
        raise WeightsError(
            f"ImageNet weights for {spec.title} are not cached and this machine is offline: "
            f"put {filename} in {where}, upload a weights file, or choose random initialisation."
        ) from exc
    finally:
        socket.setdefaulttimeout(old_timeout)


def load_weights_file(model: "keras.Model", path: str | os.PathLike, title: str) -> None:
    """Load a user's .h5 / .weights.h5 into ``model``; a mismatch raises ModelFileError that says so."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"The weights file {path.name} was not found; upload it again or choose another source.")
    if not (path.name.endswith(".weights.h5") or path.suffix == ".h5"):
        raise ModelFileError(f"{path.name} is not a weights file: upload a .h5 or .weights.h5 file.")
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise ModelFileError(
            f"{path.name} does not fit {title}: it was saved from another architecture or is damaged. "
            f"Upload weights saved from {title}, or choose ImageNet or random initialisation."
        ) from exc


def load_custom_backbone(path: str | os.PathLike) -> "keras.Model":
    """Load a user's own backbone from a .keras file with Keras's safe_mode (no Lambda code is run)."""
    from .tf_env import keras

    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path.name} is not a .keras file: save your backbone with model.save('name.keras').")
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:
        text = str(exc)
        if "Lambda" in text or "safe_mode" in text:
            raise ModelFileError(
                f"{path.name} contains a Lambda layer, which could run arbitrary code, so it was refused; "
                "rebuild the model without Lambda layers."
            ) from exc
        raise ModelFileError(f"{path.name} could not be read as a Keras model: it is damaged or not a .keras file.") from exc
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ModelFileError(f"{path.name} must take one image input (height, width, 3) to be used as a backbone.")
    return model


def backbone_table() -> list[dict]:
    """One row per backbone for display: name, title, parameters, size, input size, ImageNet top-1."""
    return [
        {
            "name": s.name, "backbone": s.title, "parameters (M)": round(s.params / 1e6, 2),
            "weights (MB)": s.size_mb, "input size": s.default_size, "feature size": s.feature_size,
            "ImageNet top-1 (%)": s.top1, "ImageNet weights cached": weights_cached(s.name), "note": s.note,
        }
        for s in _SPECS
    ]
