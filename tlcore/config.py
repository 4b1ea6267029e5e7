"""RunConfig, the one description of a run, with its typed sections and every default (no TensorFlow).

A run's ``config.json`` is ``RunConfig.to_json()``: the same keys as ever, with ``freeze``, ``head`` and
``augment`` as JSON objects and ``options`` as the strategy's settings (only those chosen; the strategy's typed
options with their defaults are :attr:`RunConfig.strategy_options`, from :mod:`tlcore.catalog`).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

S = TypeVar("S", bound="Section")
MAX_WORKERS = 64                  # the most Ray workers one run may train over (RunConfig.workers)
SEVERAL_WORKERS = ("scratch", "fine_tune", "feature_extraction")   # strategies that fit under tf.distribute


class Section:
    """A nested group of settings. It still reads like the dict it is in ``config.json`` (``freeze["mode"]``,
    ``head.get("units")``), so code written against the JSON shape keeps working."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]                  # type: ignore[arg-type]

    @classmethod
    def parse(cls: type[S], value: Any, name: str) -> S:
        """The section from a dict (missing keys take their defaults), an instance, or None (all defaults);
        unknown keys raise ConfigError naming the valid ones."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise ConfigError(f"The run config's '{name}' must be an object of settings.")
        known = [f.name for f in fields(cls)]                  # type: ignore[arg-type]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ConfigError(f"Unknown setting(s) in the run config's '{name}': {', '.join(unknown)}. "
                              f"Valid: {', '.join(known)}.")
        return cls(**value)


@dataclass
class HeadConfig(Section):
    """The new head: GlobalAveragePooling → Dense(units, relu) → Dropout → Dense(classes, softmax)."""

    units: int = 1024
    dropout: float = 0.2
    enabled: bool = True      # False: pooled features go straight to the softmax layer


@dataclass
class FreezeConfig(Section):
    """How much of the backbone stays frozen.

    mode: 'all' | 'none' | 'first_n' (freeze the first n layers) | 'up_to' (freeze through ``layer``, a layer
    or block name) | 'all_but_top' (train only the top n layers).
    """

    mode: str = "all_but_top"
    n: int = 20
    layer: str | None = None


@dataclass
class AugmentConfig(Section):
    """Random augmentation, as Keras layers inside the model (active only while training)."""

    enabled: bool = False
    flip: bool = True
    rotation: float = 0.1       # fraction of a full turn
    zoom: float = 0.1
    translation: float = 0.1
    contrast: float = 0.1
    brightness: float = 0.1
    cache_copies: int = 2       # feature extraction: augmented passes cached besides the clean one

    @property
    def copies(self) -> int:
        """Augmented copies of each training image cached besides the clean one (0 when augmentation is off)."""
        return self.cache_copies if self.enabled else 0


SECTIONS: dict[str, type[Section]] = {"freeze": FreezeConfig, "head": HeadConfig, "augment": AugmentConfig}


def _on(page: str, default: Any = None, factory: Any = None) -> Any:
    """A RunConfig field that a page of the app sets: its draft section ("model" or "train") is the field's
    ``metadata["draft"]``, so the draft ↔ config mapping needs no list of keys."""
    if factory is not None:
        return field(default_factory=factory, metadata={"draft": page})
    return field(default=default, metadata={"draft": page})


@dataclass
class RunConfig:
    """Everything that defines a run. Round-trips to the JSON that ``python -m tlcore train --config`` reads.

    The fields a page sets carry ``metadata["draft"]`` (the Model or the Train page); a draft holds a partial
    RunConfig per page (see :func:`draft_fields`)."""

    data: str = ""                        # zip / folder / csv path, or "dataset:<id>" imported in the workspace
    backbone: str = _on("model", "mobilenet_025")
    backbone_file: str | None = _on("model")   # a user's own .keras backbone (replaces ``backbone``)
    weights: str = _on("model", "imagenet")    # imagenet | none | path to .h5 / .weights.h5
    strategy: str = _on("train", "auto")    # the automatic search (tlcore/strategies/auto.py)
    image_size: int | None = _on("model")      # None: the backbone's default
    epochs: int = _on("train", 10)
    fine_tune_epochs: int = _on("train", 5)
    batch_size: int = _on("train", 32)
    learning_rate: float = _on("train", 1e-3)
    fine_tune_learning_rate: float = _on("train", 1e-5)
    optimizer: str = _on("train", "adam")      # adam | rmsprop | sgd
    freeze: FreezeConfig = _on("model", factory=FreezeConfig)
    head: HeadConfig = _on("model", factory=HeadConfig)
    augment: AugmentConfig = _on("train", factory=AugmentConfig)
    class_weights: bool = _on("train", False)  # weight classes inversely to their size
    early_stopping: int = _on("train", 3)      # patience in epochs; 0 turns it off
    seed: int = _on("train", 0)
    val_split: float = 0.15
    test_split: float = 0.15
    target_data: str | None = _on("train")     # domain adaptation: unlabelled target images
    label_columns: list[str] = _on("train", factory=list)   # multi-task: CSV label columns
    options: dict = _on("train", factory=dict)              # strategy-specific settings (see tlcore.catalog)
    distribute: str = "auto"              # auto | none | mirrored | multiworker
    devices: list[str] | None = None      # explicit devices for mirrored, e.g. ["/cpu:0", "/cpu:1"]
    workers: int = 1                      # several: one run over that many Ray workers (MultiWorkerMirrored)
    name: str = ""
    group: str = ""                       # runs queued together by one comparison share this id

    def __post_init__(self) -> None:
        for name, section in SECTIONS.items():
            setattr(self, name, section.parse(getattr(self, name), name))
        if self.options is None:
            self.options = {}
        if not isinstance(self.options, dict):
            raise ConfigError("The run config's 'options' must be an object of settings.")

    @property
    def strategy_options(self) -> Any:
        """The strategy's typed options (its catalog schema, defaults filled in); ConfigError for a bad value."""
        from .catalog import entry

        return entry(self.strategy).options.parse(self.options)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Build from a dict; unknown keys and wrong types raise ConfigError naming them."""
        if not isinstance(data, dict):
            raise ConfigError("A run config must be a JSON object of settings.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown setting(s) in the run config: {', '.join(unknown)}. Valid: {', '.join(sorted(known))}.")
        config = cls(**data)
        config.validate()
        return config

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The run config is not valid JSON (line {exc.lineno}): fix or re-download it.") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"The config file {path} does not exist.")
        return cls.from_json(path.read_text(encoding="utf-8"))

    def validate(self) -> None:
        """Raise ConfigError with the fix when a setting is out of range."""
        checks = [
            (isinstance(self.epochs, int) and 0 <= self.epochs <= 1000, "epochs must be a whole number from 0 to 1000"),
            (isinstance(self.fine_tune_epochs, int) and 0 <= self.fine_tune_epochs <= 1000,
             "fine_tune_epochs must be a whole number from 0 to 1000"),
            (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 4096, "batch_size must be from 1 to 4096"),
            (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < float("inf"), "learning_rate must be above 0"),
            (isinstance(self.fine_tune_learning_rate, (int, float)) and 0 < self.fine_tune_learning_rate < float("inf"),
             "fine_tune_learning_rate must be above 0"),
            (self.optimizer in ("adam", "rmsprop", "sgd"), "optimizer must be adam, rmsprop or sgd"),
            (0 <= self.val_split < 0.9 and 0 <= self.test_split < 0.9 and self.val_split + self.test_split < 0.9,
             "val_split and test_split must be fractions that leave room for training data"),
            (self.image_size is None or (isinstance(self.image_size, int) and 16 <= self.image_size <= 1024),
             "image_size must be from 16 to 1024 pixels"),
            (self.distribute in ("auto", "none", "mirrored", "multiworker"),
             "distribute must be auto, none, mirrored or multiworker"),
            (type(self.workers) is int and 1 <= self.workers <= MAX_WORKERS,
             f"workers must be a whole number from 1 to {MAX_WORKERS}"),
            (self.workers == 1 or self.distribute in ("auto", "multiworker"),
             "workers above 1 train with distribute auto or multiworker: set one of them, or workers to 1"),
            (self.workers == 1 or self.strategy in SEVERAL_WORKERS,
             f"workers above 1 work with the {', '.join(SEVERAL_WORKERS[:-1])} and {SEVERAL_WORKERS[-1]} strategies "
             "(the others train outside tf.distribute): choose one of them, or set workers to 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid run config: {message}.")
        from .catalog import CATALOG

        if self.strategy in CATALOG:            # an unknown strategy is named when the run starts
            self.strategy_options               # noqa: B018 - parsing checks every option's value


def draft_fields(page: str) -> tuple[str, ...]:
    """The RunConfig fields a page sets ("model" or "train"), in RunConfig's order."""
    return tuple(f.name for f in fields(RunConfig) if f.metadata.get("draft") == page)


DRAFT_PAGES = ("model", "train")
