"""Recommended (automatic): a search of the head's settings on cached features, then the winner trained in full.

Optuna's TPE sampler proposes settings (hidden units, dropout, optimizer, learning rate, class weights) and its
median pruner drops a trial whose first folds already score below the median. Each trial trains a head on the
feature store's features, so the backbone runs once for the whole search. Epochs come from early stopping on each
fold. The score is the validation accuracy, or stratified k-fold cross-validation on the training features when
the validation split has fewer than ``CV_BELOW`` images. Test images are never used.

Optuna rather than KerasTuner: its ask/tell loop runs inside our own callbacks and Stop, its pruner works across
folds, and its time budget (``timeout``) is exactly the option a user sets.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import AutoOptions
from ..errors import DataError
from ..config import FreezeConfig, HeadConfig
from ..model import build_head
from ..runs import atomic_write
from ..settings import auto_budget_cap
from ..callbacks import HaltOnStop
from ..tf_env import keras
from .base import StopRequested, TrainContext, TrainResult, balanced_weights, make_optimizer

CV_BELOW = 50          # fewer validation images than this: k-fold cross-validation on the training features
UNITS = (0, 128, 256, 512, 1024)
# The app's defaults and a smaller, more regularised head: the first trials, before TPE proposes its own.
STARTS = ({"units": 1024, "dropout": 0.2, "optimizer": "adam", "learning_rate": 1e-3, "class_weights": False},
          {"units": 256, "dropout": 0.5, "optimizer": "adam", "learning_rate": 3e-4, "class_weights": False})
OPTIMIZERS = ("adam", "rmsprop")




def folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified ``k`` folds of indices (k lowered to the smallest class's count, at least 2)."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(y).min()) if len(y) else 0
    k = max(2, min(k, smallest))
    if smallest < 2:
        raise DataError("Every class needs at least 2 training images for the automatic search: add images, or "
                        "choose another strategy.")
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def fit_head(params: dict, x: np.ndarray, y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None, *,
             n_classes: int, batch: int, max_epochs: int, seed: int, stop: Any,
             epochs: int | None = None) -> tuple[Any, float, float, int]:
    """Train one head with ``params`` on features: (head, validation accuracy and loss, or nan, nan; the epochs
    run, or the best epoch)."""
    keras.utils.set_random_seed(seed)
    units = int(params["units"])
    head = build_head(n_classes, HeadConfig(enabled=units > 0, units=max(units, 1), dropout=float(params["dropout"])),
                      x.shape[1])
    head.compile(optimizer=make_optimizer(params["optimizer"], float(params["learning_rate"])),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                 steps_per_execution=max(1, min(16, -(-len(x) // batch))))
    weights = balanced_weights(y) if params.get("class_weights") else None
    callbacks: list = [HaltOnStop(stop)]
    if val is not None and epochs is None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True))
    history = head.fit(x, y, batch_size=batch, epochs=epochs or max_epochs, verbose=0, shuffle=True,
                       validation_data=val, callbacks=callbacks, class_weight=weights)
    if stop.is_set():
        raise StopRequested()
    run = len(history.history.get("loss", []))
    if val is None:
        return head, math.nan, math.nan, run
    losses = history.history["val_loss"]
    best = int(np.argmin(losses)) if epochs is None else run - 1
    return head, float(history.history["val_accuracy"][best]), float(losses[best]), best + 1


class Auto:
    def fit(self, ctx: TrainContext) -> TrainResult:
        opts = AutoOptions.parse(ctx.config.options)
        budget = min(float(opts.budget_s), auto_budget_cap())
        if not ctx.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        train_paths, val_paths = ctx.paths("train"), ctx.paths("val")
        clean = ctx.features_of(model, train_paths + val_paths, label="train+val")
        n, n_classes = len(train_paths), len(ctx.classes)
        x, y = clean[:n], ctx.labels("train")
        xv, yv = clean[n:], ctx.labels("val")
        cross = len(val_paths) < CV_BELOW
        splits = folds(y, opts.folds, ctx.config.seed) if cross else [(np.arange(n), None)]
        scoring = f"{len(splits)}-fold cross-validation on the training images" if cross else "validation accuracy"
        batch = min(ctx.config.batch_size, max(1, n))
        trials: list[dict] = []
        ctx.emit("phase", phase="search", message=f"Searching the settings ({scoring}, up to {budget:.0f} s)")

        def objective(trial: Any) -> float:
            params = {"units": trial.suggest_categorical("units", UNITS),
                      "dropout": trial.suggest_float("dropout", 0.0, 0.6),
                      "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
                      "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                      "class_weights": trial.suggest_categorical("class_weights", (False, True))}
            started, scores, losses, epochs = time.perf_counter(), [], [], []
            for i, (tr, te) in enumerate(splits):
                val = (x[te], y[te]) if cross else (xv, yv) if len(yv) else None
                _, acc, loss, ep = fit_head(params, x[tr], y[tr], val, n_classes=n_classes, batch=batch,
                                            max_epochs=opts.max_epochs, seed=ctx.config.seed + i, stop=ctx.stop)
                scores.append(acc)
                losses.append(loss)
                epochs.append(ep)
                trial.report(float(np.nanmean(scores)), i)
                if i + 1 < len(splits) and trial.should_prune():
                    self._record(ctx, trials, trial.number, params, scores, epochs, started, "pruned")
                    import optuna

                    raise optuna.TrialPruned()
            score = float(np.nanmean(scores)) if not np.all(np.isnan(scores)) else 0.0
            self._record(ctx, trials, trial.number, params, scores, epochs, started, "complete")
            trial.set_user_attr("epochs", int(round(float(np.mean(epochs)))))
            trial.set_user_attr("loss", float(np.nanmean(losses)) if not np.all(np.isnan(losses)) else math.inf)
            return score

        study = self._study(ctx.config.seed)
        for start in STARTS:                 # known-good settings first: a short budget still tries them
            study.enqueue_trial(start)
        study.optimize(objective, n_trials=opts.max_trials, timeout=budget, catch=())
        done = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
        if not done:
            raise DataError("The automatic search finished no trial in its time budget: raise options['budget_s'].")
        # Many settings tie on accuracy with a few hundred images: the tie goes to the lower validation loss (the
        # surer of the right answers), then to the earlier trial.
        best = max(done, key=lambda t: (t.value, -t.user_attrs.get("loss", math.inf), -t.number))
        params, epochs = dict(best.params), int(best.user_attrs.get("epochs", ctx.config.epochs))
        concrete = self.concrete_config(ctx.config, params, epochs)
        ctx.emit("search_done", best=params, score=float(best.value), epochs=epochs, trials=len(trials),
                 scoring=scoring)
        # The winner, trained on every training image for the epochs its folds needed, as feature extraction does.
        ctx.config, ctx.total_epochs = concrete, epochs
        final = ctx.build(freeze_cfg=FreezeConfig(mode="all"), base=model.get_layer("backbone"))   # built once
        ctx.train_head(final, epochs)
        search = {"scoring": scoring, "budget_s": budget, "trials": trials, "best": params,
                  "best_score": float(best.value), "epochs": epochs, "config": concrete.to_dict()}
        return TrainResult(final, ctx.classes, extra={"search": search})

    @staticmethod
    def _study(seed: int) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                   pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0))

    @staticmethod
    def _record(ctx: TrainContext, trials: list, number: int, params: dict, scores: list, epochs: list,
                started: float, state: str) -> None:
        row = {"trial": number + 1, **params, "score": float(np.nanmean(scores)) if scores else None,
               "epochs": int(round(float(np.mean(epochs)))) if epochs else None,
               "seconds": round(time.perf_counter() - started, 2), "state": state}
        trials.append(row)
        ctx.emit("trial", **row)

    @staticmethod
    def concrete_config(config: Any, params: dict, epochs: int) -> Any:
        """The winner as a plain feature-extraction config: a replay with ``--config`` trains it without searching."""
        units = int(params["units"])
        head = HeadConfig(enabled=units > 0, units=units or config.head.units, dropout=float(params["dropout"]))
        return dataclasses.replace(config, strategy="feature_extraction", head=head, epochs=int(epochs),
                                   optimizer=params["optimizer"], learning_rate=float(params["learning_rate"]),
                                   class_weights=bool(params["class_weights"]), early_stopping=0, options={})

    def save_extra(self, run_dir: Path, result: TrainResult) -> None:
        """search.json (every trial and the winner) and best_config.json (replay it with ``train --config``)."""
        search = result.extra["search"]
        atomic_write(Path(run_dir) / "search.json", json.dumps(search, indent=2, default=str))
        atomic_write(Path(run_dir) / "best_config.json", json.dumps(search["config"], indent=2, default=str))
