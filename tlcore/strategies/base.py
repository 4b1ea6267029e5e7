"""The Strategy interface and the TrainContext that gives every strategy the same building blocks."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .. import feature_store
from ..backbones import BackboneSpec, create_backbone, get_spec, load_custom_backbone, resolve_size
from ..callbacks import EventCallback
from ..calls import over_files
from ..data import Dataset
from ..errors import DataError
from ..catalog import planned_epochs
from ..config import FreezeConfig, RunConfig
from ..model import build_model, feature_model, freeze
from ..pipeline import augmentation, image_dataset
from ..tf_env import keras, tf


HEAD_STEPS_PER_EXECUTION = 16     # head batches per traced call on cached features (see train_head)


class StopRequested(Exception):
    """Raised when the user stops a run before any model exists."""


@dataclass
class TrainResult:
    """What a strategy hands back: the inference model (raw pixels in) and its class names."""

    model: keras.Model
    classes: list[str]
    extra: dict = field(default_factory=dict)


class Strategy(Protocol):
    """A training recipe. Only ``fit`` is written by its author (``save_extra(run_dir, result)`` and
    ``evaluate(ctx, result)`` are optional); the registry sets name, title and description from the catalog."""

    name: str
    title: str
    description: str

    def fit(self, ctx: "TrainContext") -> TrainResult: ...


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam (default), RMSprop (the classic recipe) or SGD with momentum 0.9."""
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate)


def balanced_weights(y: np.ndarray) -> dict[int, float]:
    """Keras ``class_weight`` that weights each class present in ``y`` inversely to its size (scikit-learn's
    "balanced")."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    return {int(c): float(w) for c, w in zip(present, weights)}


class TrainContext:
    """Data, settings and the shared steps (build, cache features, fit) a strategy composes."""

    def __init__(self, config: RunConfig, dataset: Dataset, run_dir: Path, emit: Callable[..., None],
                 stop: threading.Event | None = None, distribution: Any = None, target: Dataset | None = None) -> None:
        self.config, self.dataset, self.run_dir, self.emit = config, dataset, Path(run_dir), emit
        self.stop = stop or threading.Event()
        self.distribution = distribution or tf.distribute.get_strategy()
        self.target = target
        self.classes = list(dataset.classes)
        self.spec: BackboneSpec | None = None if config.backbone_file else get_spec(config.backbone)
        self.image_size = self._image_size()
        self.total_epochs = planned_epochs(config)      # what the catalog says the strategy plans
        self.epochs_done = 0
        self.temperature = 1.0          # the calibration's, set by the runner after fit (tlcore.calibration)
        self.warnings: list[str] = []
        self._feature_fns: dict[int, tuple[Any, Any]] = {}
        self._feature_models: dict[int, keras.Model] = {}
        self.feature_store = feature_store.store_for_run(run_dir)    # shared by every run of the workspace

    def _image_size(self) -> int:
        if self.config.backbone_file:
            return int(self.config.image_size or 224)
        return resolve_size(self.config.backbone, self.config.image_size)

    # -- data -------------------------------------------------------------------------------------------
    def paths(self, split: str, dataset: Dataset | None = None) -> list[str]:
        return [s.path for s in (dataset or self.dataset).split(split)]

    def labels(self, split: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[s.label] for s in self.dataset.split(split)], dtype="int32")

    def class_weight(self) -> dict[int, float] | None:
        return balanced_weights(self.labels("train")) if self.config.class_weights else None

    def images(self, split: str, *, shuffle: bool = False, labels: Any = "auto",
               dataset: Dataset | None = None) -> tf.data.Dataset:
        y = self.labels(split) if labels == "auto" else labels
        return image_dataset(self.paths(split, dataset), y, self.image_size, self.config.batch_size,
                             shuffle=shuffle, seed=self.config.seed)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.emit("warning", message=message)

    # -- model ------------------------------------------------------------------------------------------
    def backbone(self, weights: str | None = None) -> keras.Model:
        with self.distribution.scope():
            if self.config.backbone_file:
                return load_custom_backbone(self.config.backbone_file)
            return create_backbone(self.config.backbone, weights or self.config.weights, self.image_size)

    def build(self, *, weights: str | None = None, freeze_cfg: FreezeConfig | None = None,
              num_classes: int | None = None, scratch: bool = False, base: keras.Model | None = None) -> keras.Model:
        """Backbone → head, built in the distribution scope, frozen as asked (``scratch``: BatchNorm learns too).
        ``base``: a backbone already built for this run (a model's ``backbone`` layer), reused instead of built."""
        several = isinstance(self.distribution, tf.distribute.MultiWorkerMirroredStrategy)
        self.emit("phase", phase="build", message="Building the model",
                  replicas=int(self.distribution.num_replicas_in_sync),
                  distribution="MultiWorkerMirroredStrategy" if several else type(self.distribution).__name__)
        with self.distribution.scope():
            base = base if base is not None else self.backbone(weights)
            freeze(base, freeze_cfg or self.config.freeze, keep_bn_frozen=not scratch)
            aug = augmentation(self.config.augment, seed=self.config.seed)
            return build_model(base, self.spec, num_classes or len(self.classes), self.config.head,
                               self.image_size, aug, bn_inference=not scratch)

    def compile(self, model: keras.Model, learning_rate: float, **kwargs: Any) -> None:
        """(Re)compile: always after changing ``trainable``."""
        with self.distribution.scope():
            model.compile(optimizer=make_optimizer(self.config.optimizer, learning_rate),
                          loss=kwargs.pop("loss", "sparse_categorical_crossentropy"),
                          metrics=kwargs.pop("metrics", ["accuracy"]), **kwargs)

    # -- features ---------------------------------------------------------------------------------------
    def _feature_calls(self, model: keras.Model) -> tuple[Any, Any]:
        """One traced function per model for clean and one for augmented passes (no retracing per split)."""
        key = id(model)
        if key not in self._feature_fns:
            fm = self._feature_models[key] = feature_model(model)
            spec = [tf.TensorSpec((None, self.image_size, self.image_size, 3), tf.float32)]
            self._feature_fns[key] = (tf.function(lambda x: fm(x, training=False), input_signature=spec),
                                      tf.function(lambda x: fm(x, training=True), input_signature=spec))
        return self._feature_fns[key]

    def extract_features(self, model: keras.Model, split: str, *, copies: int = 0,
                         dataset: Dataset | None = None) -> np.ndarray:
        """Pooled backbone features of ``split``, computed in one pass (plus ``copies`` augmented passes)."""
        return self.features_of(model, self.paths(split, dataset), copies=copies, label=split)

    def feature_key(self, model: keras.Model, *, boundary: str = "pool", dtype: str = "float32") -> str:
        """The feature store's key for the outputs of ``model`` (raw pixels → ``boundary``) at this run's input
        size: its layers and weight values, the stored layer and the storage dtype (:mod:`tlcore.feature_store`)."""
        key = feature_store.model_key(feature_store.model_fingerprint(model), image_size=self.image_size,
                                      boundary=boundary, dtype=dtype)
        weights = self.config.weights if self.config.weights in ("imagenet", "none") else "a weights file"
        self.feature_store.describe(key, {"backbone": "a .keras file" if self.config.backbone_file else
                                          self.config.backbone, "weights": weights, "image_size": self.image_size,
                                          "boundary": boundary, "dtype": dtype})   # words only: no path, no owner
        return key

    def features_of(self, model: keras.Model, paths: list[str], *, copies: int = 0, label: str = "",
                    clean_pass: bool = True) -> np.ndarray:
        """Pooled features of image files: one clean pass, then ``copies`` augmented passes, in that order.

        Everything comes from the shared feature store when it holds it: the clean features image by image, the
        augmented copies as one block (their random draws depend on the batch and the RNG state, which the block's
        key holds and a hit restores). Only the misses run through the backbone; a ``features`` event says how
        many images were reused."""
        clean, augmented = self._feature_calls(model)
        fm, store, paths = self._feature_models[id(model)], self.feature_store, list(paths)
        pool, batch = model.get_layer("pool"), self.config.batch_size
        steps = -(-len(paths) // batch)
        count = {"done": 0, "total": 0}

        def check_stop() -> None:
            if self.stop.is_set():
                raise StopRequested()

        def run(calls: list, files: list[str], later: int = 0) -> np.ndarray:
            offset = count["done"]
            count["total"] = offset + len(calls) * -(-len(files) // batch) + later

            def progress(done: int, total: int) -> None:
                count["done"] = offset + done
                self.emit("progress", phase="features", split=label, done=count["done"], total=count["total"])

            return over_files(pool, files, self.image_size, batch, calls=calls, before_batch=check_stop,
                              after_batch=progress).astype("float32")

        key = self.feature_key(fm) if store.enabled else ""
        parts, reused = [], 0
        if clean_pass:
            found = store.per_image(key, paths, lambda files: run([clean], files, later=copies * steps),
                                    shape=tuple(pool.output.shape[1:]), interrupt=check_stop)
            parts.append(found.array)
            reused += found.reused
        if copies:
            names = [layer for layer in fm.layers if layer.name == "augment"]
            rng = list(names[0].variables) if names else []
            fields = dict(copies=copies, batch_size=batch, seed=self.config.seed,
                          augment=feature_store.model_fingerprint(names[0], skip=()) if names else None,
                          rng=[np.asarray(v.numpy()).tolist() for v in rng])

            def augment() -> tuple[np.ndarray, dict]:
                out = run([augmented] * copies, paths)
                return out, {f"rng{i}": np.asarray(v.numpy()) for i, v in enumerate(rng)}

            try:
                name = feature_store.block_key(key, [feature_store.file_hash(p) for p in paths], **fields) \
                    if store.enabled else ""
            except OSError:        # an unreadable file: computed (and reported) as before, not stored
                name, store = "", feature_store.FeatureStore(store.root, limit_bytes=0)
            block = store.block(key, name, augment, interrupt=check_stop)
            for i, v in enumerate(rng):
                v.assign(block.meta.get(f"rng{i}", v.numpy()))   # as if the pass had run: later draws agree
            parts.append(block.array)
            reused += block.reused
        self.emit("features", split=label, reused=int(reused), total=len(paths) * (int(clean_pass) + copies))
        if not parts:
            return np.zeros((0, *pool.output.shape[1:]), "float32")
        return np.concatenate(parts).astype("float32") if len(parts) > 1 else np.asarray(parts[0], "float32")

    def arrays(self, x: Any, y: Any, *, shuffle: bool = False, batch_size: int | None = None,
               sample_weight: Any = None) -> tf.data.Dataset:
        """Cached features as a tf.data pipeline: much less per-epoch overhead than fitting on NumPy arrays."""
        parts = (x, y) if sample_weight is None else (x, y, sample_weight)
        ds = tf.data.Dataset.from_tensor_slices(parts)
        if shuffle:
            ds = ds.shuffle(len(x), seed=self.config.seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size or self.config.batch_size).prefetch(tf.data.AUTOTUNE)

    # -- fitting ----------------------------------------------------------------------------------------
    def callbacks(self, phase: str, steps: int | None, has_val: bool) -> tuple[EventCallback, list]:
        monitor = "val_loss" if has_val else "loss"
        cb = EventCallback(self.emit, self.stop, phase=phase, epoch_offset=self.epochs_done,
                           total_epochs=self.total_epochs, steps=steps, monitor=monitor)
        extra = []
        if self.config.early_stopping and has_val:
            extra.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.config.early_stopping,
                                                       restore_best_weights=True))
        return cb, [cb, *extra]

    def fit(self, model: keras.Model, x: Any, y: Any = None, *, epochs: int, phase: str,
            validation_data: Any = None, steps: int | None = None, **kwargs: Any) -> dict:
        """model.fit with the event callback; returns the history and advances the epoch counter."""
        if epochs <= 0:
            return {}
        self.emit("phase", phase=phase, epochs=epochs)
        cb, cbs = self.callbacks(phase, steps, validation_data is not None)
        history = model.fit(x, y, epochs=epochs, validation_data=validation_data, callbacks=cbs, verbose=0,
                            class_weight=kwargs.pop("class_weight", self.class_weight()), **kwargs)
        self.epochs_done += cb.epochs_done
        cb.nan_outcome(self.warn)
        return history.history

    def train_head(self, model: keras.Model, epochs: int, phase: str = "head") -> dict:
        """Train only the head on cached features: the backbone runs once per image, not once per epoch."""
        copies = self.config.augment.copies
        train_paths, val_paths = self.paths("train"), self.paths("val")
        # One clean pass over train + validation images together (one pipeline start), then augmented train copies.
        clean = self.features_of(model, train_paths + val_paths, label="train+val")
        n = len(train_paths)
        extra = (self.features_of(model, train_paths, copies=copies, clean_pass=False, label="train (augmented)")
                 if copies else None)
        x_train = clean[:n] if extra is None else np.concatenate([clean[:n], extra])
        y_train = np.tile(self.labels("train"), copies + 1)
        val = (clean[n:], self.labels("val")) if val_paths else None
        head = model.get_layer("head")
        batch = min(self.config.batch_size, max(1, len(x_train)))
        steps = -(-len(x_train) // batch)
        # Several batches per traced call (Keras's steps_per_execution): the per-batch Python work of fit goes;
        # the event callback counts the batches each call ran, and a Stop takes effect when the call in progress
        # ends (at most HEAD_STEPS_PER_EXECUTION batches of a small head: milliseconds).
        # One batch per call under several replicas: Keras's multi-step loop fails inside MirroredStrategy here.
        several = int(self.distribution.num_replicas_in_sync) > 1
        per_call = 1 if several else max(1, min(steps, HEAD_STEPS_PER_EXECUTION))
        self.compile(head, self.config.learning_rate, steps_per_execution=per_call)
        train = self.arrays(x_train, y_train, shuffle=True, batch_size=batch)
        val_ds = self.arrays(*val, batch_size=batch) if val is not None else None
        return self.fit(head, train, epochs=epochs, phase=phase, validation_data=val_ds, steps=steps)

    def train_full(self, model: keras.Model, epochs: int, phase: str) -> dict:
        """Train the whole model end to end on streamed images (augmentation inside the model)."""
        if not self.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        train = self.images("train", shuffle=True)
        val = self.images("val") if self.dataset.split("val") else None
        steps = -(-len(self.dataset.split("train")) // self.config.batch_size)
        return self.fit(model, train, epochs=epochs, phase=phase, validation_data=val, steps=steps)
