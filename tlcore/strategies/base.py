"""The Strategy interface and the TrainContext that gives every strategy the same building blocks."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..backbones import BackboneSpec, create_backbone, get_spec, load_custom_backbone, resolve_size
from ..callbacks import EventCallback
from ..data import Dataset
from ..errors import DataError, TLError
from ..model import FreezeConfig, HeadConfig, build_model, feature_model, freeze
from ..pipeline import AugmentConfig, augmentation, image_dataset
from ..runs import RunConfig
from ..tf_env import keras, tf


class StopRequested(Exception):
    """Raised when the user stops a run before any model exists."""


@dataclass
class TrainResult:
    """What a strategy hands back: the inference model (raw pixels in) and its class names."""

    model: keras.Model
    classes: list[str]
    extra: dict = field(default_factory=dict)


class Strategy(Protocol):
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
        self.total_epochs = config.epochs
        self.epochs_done = 0
        self.warnings: list[str] = []

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
        if not self.config.class_weights:
            return None
        from sklearn.utils.class_weight import compute_class_weight

        y = self.labels("train")
        present = np.unique(y)
        weights = compute_class_weight("balanced", classes=present, y=y)
        return {int(c): float(w) for c, w in zip(present, weights)}

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
              num_classes: int | None = None, scratch: bool = False) -> keras.Model:
        """Backbone → head, built in the distribution scope, frozen as asked (``scratch``: BatchNorm learns too)."""
        self.emit("phase", phase="build", message="Building the model",
                  replicas=int(self.distribution.num_replicas_in_sync))
        with self.distribution.scope():
            base = self.backbone(weights)
            freeze(base, freeze_cfg or FreezeConfig(**self.config.freeze), keep_bn_frozen=not scratch)
            aug = augmentation(AugmentConfig(**self.config.augment), seed=self.config.seed)
            return build_model(base, self.spec, num_classes or len(self.classes), HeadConfig(**self.config.head),
                               self.image_size, aug, bn_inference=not scratch)

    def compile(self, model: keras.Model, learning_rate: float, **kwargs: Any) -> None:
        """(Re)compile: always after changing ``trainable``."""
        with self.distribution.scope():
            model.compile(optimizer=make_optimizer(self.config.optimizer, learning_rate),
                          loss=kwargs.pop("loss", "sparse_categorical_crossentropy"),
                          metrics=kwargs.pop("metrics", ["accuracy"]), **kwargs)

    # -- features ---------------------------------------------------------------------------------------
    def extract_features(self, model: keras.Model, split: str, *, copies: int = 0,
                         dataset: Dataset | None = None) -> np.ndarray:
        """Pooled backbone features of ``split``, computed in one pass (plus ``copies`` augmented passes)."""
        fm = feature_model(model)
        call = tf.function(lambda x, training: fm(x, training=training), reduce_retracing=True)
        paths = self.paths(split, dataset)
        ds = image_dataset(paths, None, self.image_size, self.config.batch_size)
        passes = [False] + [True] * copies
        steps = -(-len(paths) // self.config.batch_size) * len(passes)
        chunks, done = [], 0
        for augmented in passes:
            for batch in ds:
                if self.stop.is_set():
                    raise StopRequested()
                chunks.append(call(batch, augmented).numpy())
                done += 1
                self.emit("progress", phase="features", split=split, done=done, total=steps)
        if not chunks:
            return np.zeros((0, model.get_layer("pool").output.shape[-1]), dtype="float32")
        return np.concatenate(chunks).astype("float32")

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
        if cb.nan_seen:
            if cb.best_weights is None:
                raise TLError("Training failed because the loss became NaN (not a number): "
                              "lower the learning rate and try again.")
            self.warn("The loss became NaN, so training stopped early and kept the best weights so far; "
                      "a lower learning rate usually fixes this.")
        return history.history

    def train_head(self, model: keras.Model, epochs: int, phase: str = "head") -> dict:
        """Train only the head on cached features: the backbone runs once per image, not once per epoch."""
        aug = AugmentConfig(**self.config.augment)
        copies = aug.cache_copies if aug.enabled else 0
        x_train = self.extract_features(model, "train", copies=copies)
        y_train = np.tile(self.labels("train"), copies + 1)
        has_val = bool(self.dataset.split("val"))
        val = (self.extract_features(model, "val"), self.labels("val")) if has_val else None
        head = model.get_layer("head")
        self.compile(head, self.config.learning_rate)
        batch = min(self.config.batch_size, max(1, len(x_train)))
        return self.fit(head, x_train, y_train, epochs=epochs, phase=phase, validation_data=val,
                        batch_size=batch, shuffle=True, steps=-(-len(x_train) // batch))

    def train_full(self, model: keras.Model, epochs: int, phase: str) -> dict:
        """Train the whole model end to end on streamed images (augmentation inside the model)."""
        if not self.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        train = self.images("train", shuffle=True)
        val = self.images("val") if self.dataset.split("val") else None
        steps = -(-len(self.dataset.split("train")) // self.config.batch_size)
        return self.fit(model, train, epochs=epochs, phase=phase, validation_data=val, steps=steps)
