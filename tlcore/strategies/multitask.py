"""Multi-task learning: one shared frozen backbone, one softmax head per label column of a CSV.

The tasks are the CSV's main label column (``Sample.label``) plus its extra label columns (``Dataset.tasks``,
``Sample.labels``). A row without a value for a task gets sample weight 0 for that task's output, so it teaches
the other tasks and is simply left out of that task's loss and accuracy. ``options["loss_weights"]`` weighs the
tasks ({task: weight}, default 1 each). Heads train on cached backbone features (fast).

The saved ``model.keras`` takes raw pixels and outputs a dict {output key: probabilities}; ``tasks.json``
lists {task: classes} in output order, and :func:`output_keys` maps task names to output keys (the task name
itself whenever it is a valid Keras name). ``labels.json`` holds the main task's classes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset, Sample
from ..errors import ConfigError, DataError
from ..model import HeadConfig, build_head
from ..catalog import MultiTaskOptions
from ..predict import Predictor
from ..runs import atomic_write
from ..tasks import evaluate_tasks, load_tasks, output_keys, sample_label
from ..tf_env import keras
from ._common import frozen_trunk
from .base import TrainContext, TrainResult


def primary_task(config_columns: list[str], dataset: Dataset) -> str:
    """The name of the main label column: the first requested column the importer used as the label, else 'label'."""
    for column in config_columns or []:
        if column not in dataset.tasks:
            return column
    return "label"


def task_map(ctx: TrainContext) -> dict[str, list[str]]:
    """{task: classes}, the main label first; tasks with fewer than two classes are left out with a warning."""
    tasks = {primary_task(ctx.config.label_columns, ctx.dataset): list(ctx.classes)}
    for task, classes in ctx.dataset.tasks.items():
        if task in tasks:
            continue
        if len(classes) < 2:
            ctx.warn(f"The column '{task}' has {len(classes)} distinct value(s), so it cannot be learned and was "
                     "left out; give it at least two values.")
            continue
        tasks[task] = list(classes)
    if len(tasks) < 2:
        raise ConfigError("Multi-task learning needs a CSV with at least two label columns (for example "
                          "'species' and 'colour'): add the columns, and name them in label_columns.")
    return tasks


def task_targets(samples: list[Sample], tasks: dict[str, list[str]], primary: str
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per output key: class indices (0 where missing) and sample weights (0 where missing, else 1)."""
    keys = output_keys(list(tasks))
    ys, ws = {}, {}
    for task, classes in tasks.items():
        index = {c: i for i, c in enumerate(classes)}
        labels = [index.get(sample_label(s, task, primary)) if sample_label(s, task, primary) is not None else None
                  for s in samples]
        ys[keys[task]] = np.array([0 if v is None else v for v in labels], dtype="int32")
        ws[keys[task]] = np.array([0.0 if v is None else 1.0 for v in labels], dtype="float32")
    return ys, ws


def loss_weights(tasks: dict[str, list[str]], given: dict | None) -> dict[str, float]:
    """{output key: weight} from ``options["loss_weights"]`` (by task name or output key; default 1)."""
    keys = output_keys(list(tasks))
    given = dict(given or {})
    known = set(keys) | set(keys.values())
    unknown = [k for k in given if k not in known]
    if unknown:
        raise ConfigError(f"loss_weights names unknown task(s) {', '.join(map(repr, unknown))}; "
                          f"the tasks are {', '.join(map(repr, tasks))}.")
    out = {}
    for task, key in keys.items():
        weight = given.get(task, given.get(key, 1.0))
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"The loss weight of '{task}' must be a number of 0 or more.")
        out[key] = float(weight)
    return out


def build_heads(tasks: dict[str, list[str]], feature_size: int, head: HeadConfig) -> tuple[dict, keras.Model]:
    """One head per task (pooled features → softmax) and the model of all heads on cached features."""
    keys = output_keys(list(tasks))
    heads = {keys[t]: build_head(len(c), head, feature_size, name=f"task_{keys[t]}") for t, c in tasks.items()}
    features = keras.Input((feature_size,), name="features")
    return heads, keras.Model(features, {k: h(features) for k, h in heads.items()}, name="heads")


def compile_heads(ctx: TrainContext, model: keras.Model, weights: dict[str, float]) -> None:
    """Per-output losses and loss weights; accuracy is a *weighted* metric, so masked rows do not count."""
    ctx.compile(model, ctx.config.learning_rate, loss={k: "sparse_categorical_crossentropy" for k in weights},
                loss_weights=weights, metrics=None, weighted_metrics={k: ["accuracy"] for k in weights})


class MultiTask:
    def fit(self, ctx: TrainContext) -> TrainResult:
        tasks = task_map(ctx)
        primary = next(iter(tasks))
        trunk = frozen_trunk(ctx)
        copies = ctx.config.augment.copies
        if not ctx.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        x = ctx.extract_features(trunk, "train", copies=copies)
        y, w = task_targets(ctx.dataset.split("train"), tasks, primary)
        y, w = ({k: np.tile(v, copies + 1) for k, v in d.items()} for d in (y, w))
        val = None
        if ctx.dataset.split("val"):
            yv, wv = task_targets(ctx.dataset.split("val"), tasks, primary)
            val = (ctx.extract_features(trunk, "val"), yv, wv)
        heads, head_model = build_heads(tasks, x.shape[1], ctx.config.head)
        compile_heads(ctx, head_model, loss_weights(tasks, MultiTaskOptions.parse(ctx.config.options).loss_weights))
        batch = min(ctx.config.batch_size, max(1, len(x)))
        ctx.fit(head_model, x, y, sample_weight=w, epochs=ctx.config.epochs, phase="heads", validation_data=val,
                batch_size=batch, shuffle=True, steps=-(-len(x) // batch), class_weight=None)
        pooled = trunk.outputs[0]
        model = keras.Model(trunk.inputs, {k: h(pooled) for k, h in heads.items()}, name="multitask")
        return TrainResult(model, list(tasks[primary]), extra={"tasks": tasks})

    def save_extra(self, run_dir: Path, result: TrainResult) -> None:
        atomic_write(Path(run_dir) / "tasks.json", json.dumps(result.extra["tasks"], indent=2, ensure_ascii=False))

    def evaluate(self, ctx: TrainContext, result: TrainResult) -> dict:
        """Per task: accuracy, macro F1, per-class scores and confusion matrix on the test split (labelled rows)."""
        return evaluate_tasks(result.model, ctx.dataset.split("test"), result.extra["tasks"], ctx.image_size,
                              ctx.config.batch_size)


def predict_tasks(run_dir: str | Path, images: Any, top_k: int = 3) -> list[dict[str, list[tuple[str, float]]]]:
    """Every task's answer for each image: [{task: [(class, probability), ...] most likely first}, ...]."""
    load_tasks(run_dir)   # DataError when this is not a finished multi-task run
    return Predictor.from_run(run_dir).predict_tasks(images, top_k)
