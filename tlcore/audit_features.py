"""The pooled backbone features the data check reads, through the shared feature store.

A frozen backbone's pooled features are keyed exactly as a training run keys them (``TrainContext.feature_key``
in :mod:`tlcore.strategies.base`: :func:`feature_store.model_key` of the fingerprint of the model from raw pixels
to its ``pool`` layer), so features a run computed are reused here and the other way round. The key does not
depend on the head, the number of classes or the freeze setting: only on the layers from the input to ``pool``.
"""
from __future__ import annotations

import json
import os
import weakref
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import feature_store
from .backbones import keras_models_dir, resolve_size, weights_filename

_TRUNKS: dict[tuple[str, str, int], tuple[Any, str]] = {}
_WITH_THUMBS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()   # trunk -> features + thumbnails
THUMB = 32
_KEYS_FILE = "pool-keys.json"
_CODE = ("model.py", "backbones.py", "pipeline.py", "calls.py", "feature_store.py")


def pool_key(trunk: Any, image_size: int, *, dtype: str = "float32") -> str:
    """The feature store's key of ``trunk``'s pooled outputs (raw pixels → ``pool``) at ``image_size``: the key a
    training run uses for the same backbone, weights and input size."""
    return feature_store.model_key(feature_store.model_fingerprint(trunk), image_size=int(image_size),
                                   boundary="pool", dtype=dtype)


def feature_trunk(backbone: str = "mobilenet_025", weights: str = "imagenet",
                  image_size: int | None = None) -> tuple[Any, str, int]:
    """(raw pixels → pooled features model, its store key, input size), built once per process and setting."""
    from .backbones import create_backbone, get_spec
    from .model import build_trunk
    from .tf_env import keras

    size = resolve_size(backbone, image_size)
    cache = (backbone, str(weights), size)
    if cache not in _TRUNKS:
        base = create_backbone(backbone, weights, size)
        base.trainable = False
        base.name = "backbone"
        inputs, pooled = build_trunk(base, get_spec(backbone), size)
        trunk = keras.Model(inputs, pooled, name="features")
        _TRUNKS[cache] = (trunk, pool_key(trunk, size))
    trunk, key = _TRUNKS[cache]
    return trunk, key, size


def _thumbs(x: Any) -> Any:
    """Raw RGB pixels (N, size, size, 3) → 32×32 colour thumbnails (N, 32, 32, 3), area-averaged."""
    from .tf_env import tf

    return tf.image.resize(x, (THUMB, THUMB), method="area")


def _features_and_thumbs(trunk: Any, size: int) -> Any:
    """One traced call of ``trunk`` that returns its pooled features and the batch's thumbnails."""
    from .tf_env import tf

    fn = _WITH_THUMBS.get(trunk)
    if fn is None:
        ref = weakref.ref(trunk)
        fn = tf.function(lambda x: {"features": ref()(x, training=False), "thumbs": _thumbs(x)},
                         input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])
        _WITH_THUMBS[trunk] = fn
    return fn


def thumbnails(paths: Sequence[str], image_size: int) -> np.ndarray:
    """32×32 colour thumbnails of image files, from the pixels the backbone sees: the training decode at
    ``image_size`` (what :func:`pooled_features` hands its ``thumbs`` hook), without running the backbone."""
    from .calls import BATCH_SIZE, over_files
    from .tf_env import keras, tf

    if not paths:
        return np.zeros((0, THUMB, THUMB, 3), "float32")
    call = tf.function(_thumbs, input_signature=[tf.TensorSpec((None, image_size, image_size, 3), tf.float32)])
    return np.asarray(over_files(keras.layers.Identity(), list(paths), image_size, BATCH_SIZE, calls=[call]),
                      "float32")


def warm(backbone: str = "mobilenet_025") -> bool:
    """Build and trace the check's default trunk ahead of the first check (the server's warm-up does this), when
    its ImageNet weights are on this machine; True when it did. The first check then costs what a later one does."""
    from .backbones import weights_cached
    from .tf_env import tf

    size = resolve_size(backbone, None)
    if not weights_cached(backbone, size):
        return False
    trunk, _, size = feature_trunk(backbone, "imagenet", size)
    _features_and_thumbs(trunk, size)(tf.zeros((1, size, size, 3)))
    return True


def _version(name: str) -> str:
    for dist in (name, f"{name}-cpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def _identity(backbone: str, weights: str, size: int) -> str | None:
    """What fixes the trunk's key without building it: the backbone, the weights file's bytes, the input size,
    the Keras and TensorFlow versions and the code that builds and runs the trunk. None for random weights."""
    if weights in ("none", "random", None):
        return None
    path = keras_models_dir() / weights_filename(backbone, size) if weights == "imagenet" else Path(weights)
    try:
        code = [feature_store.file_hash(Path(__file__).with_name(name)) for name in _CODE]
        fields = [backbone, feature_store.file_hash(path), size, _version("keras"), _version("tensorflow"), code]
    except OSError:
        return None
    return feature_store._digest({"identity": fields})


def _known(store: feature_store.FeatureStore) -> dict:
    try:
        return json.loads((store.root / _KEYS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _remember(store: feature_store.FeatureStore, identity: str, key: str, width: int) -> None:
    known = _known(store) | {identity: [key, width]}
    tmp = store.root / f".{_KEYS_FILE}.{os.getpid()}.tmp"
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(known))
        os.replace(tmp, store.root / _KEYS_FILE)
    except OSError:
        pass


def pooled_features(paths: Sequence[str], *, backbone: str = "mobilenet_025", weights: str = "imagenet",
                    image_size: int | None = None, store: feature_store.FeatureStore | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    stop: Callable[[], None] | None = None,
                    thumbs: Callable[[list[str], np.ndarray], None] | None = None) -> tuple[np.ndarray, int]:
    """Pooled features of image files (float32, one row per path) and how many came from the store.

    Only the images the store lacks run through the backbone; ``progress(done, total)`` is told after each batch
    of them, and ``stop()`` before each (it may raise to end early). When the store already knows the key of this
    backbone, weights file and size (``pool-keys.json``) and holds every image, neither TensorFlow nor the model
    is loaded. ``thumbs(files, thumbnails)`` hears the 32×32 colour thumbnails of the images the pass computed,
    made from the pixels it decoded (the data check's signatures: no second decode)."""
    paths = [str(p) for p in paths]
    store = store if store is not None else feature_store.FeatureStore()
    size = resolve_size(backbone, image_size)

    wanted: list[str] = []

    def compute(files: list[str]) -> np.ndarray:
        from .calls import BATCH_SIZE, over_files

        trunk, real, _ = feature_trunk(backbone, weights, size)
        if wanted and real != wanted[0]:
            raise _StaleKey(real)            # the remembered key is not this model's: never store under it
        if thumbs is None:
            return np.asarray(over_files(trunk, files, size, BATCH_SIZE, before_batch=stop, after_batch=progress),
                              "float32")
        out = over_files(trunk, files, size, BATCH_SIZE, calls=[_features_and_thumbs(trunk, size)],
                         before_batch=stop, after_batch=progress)
        thumbs(files, out["thumbs"])
        return np.asarray(out["features"], "float32")

    if not paths or not store.enabled:
        if not paths:
            trunk = feature_trunk(backbone, weights, size)[0]
            return np.zeros((0, int(trunk.get_layer("pool").output.shape[-1])), "float32"), 0
        return compute(paths), 0
    identity = _identity(backbone, str(weights), size)
    key, width = _known(store).get(identity, (None, None)) if identity else (None, None)
    if key is None:
        trunk, key, _ = feature_trunk(backbone, weights, size)
        width = int(trunk.get_layer("pool").output.shape[-1])
        if identity:
            _remember(store, identity, key, width)
    wanted.append(key)
    try:
        found = store.per_image(key, paths, compute, shape=(int(width),), interrupt=stop)
    except _StaleKey as stale:
        wanted[0] = key = stale.args[0]
        if identity:
            _remember(store, identity, key, int(width))
        found = store.per_image(key, paths, compute, shape=(int(width),), interrupt=stop)
    store.describe(key, {"backbone": backbone, "weights": weights if weights in ("imagenet", "none")
                         else "a weights file", "image_size": size, "boundary": "pool", "dtype": "float32"})
    return np.asarray(found.array, "float32"), int(found.reused)


class _StaleKey(Exception):
    """``pool-keys.json`` named a key that the model, once built, does not have."""


def workspace_store(workspace: str | Path | None) -> feature_store.FeatureStore:
    """The feature store of a workspace folder (the one its runs use), or the configured one."""
    return feature_store.FeatureStore(Path(workspace) / "features") if workspace else feature_store.FeatureStore()
