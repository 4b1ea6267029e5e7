"""One run, start to finish: data → strategy.fit → model → evaluation, all recorded in the run folder."""
from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from pathlib import Path

from .artifacts import save_model
from .calibration import save_confidence
from .data import Dataset
from .errors import TLError
from .evaluate import evaluate_model
from .model import param_counts
from .progress import summarize
from .results import chance_verdict, final_accuracy
from .run_data import resolve_dataset
from .runs import RunConfig, RunState, RunStore, atomic_write
from .strategies import StopRequested, TrainContext, get_strategy
from .strategies.confidence import fit_confidence
from .tf_env import keras, tf

log = logging.getLogger("tlcore")


def distribution_strategy(mode: str, devices: list[str] | None = None):
    """tf.distribute for the run: MultiWorkerMirrored with TF_CONFIG, Mirrored with several GPUs, else default."""
    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "multiworker" or (mode == "auto" and os.environ.get("TF_CONFIG")):
        _fit_under_several_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _fit_under_several_workers() -> None:
    """Two fixes to Keras 3's TensorFlow trainer (3.15), without which ``model.fit`` fails under a
    MultiWorkerMirroredStrategy over several workers (keras-team/keras#20585, "Attempt to convert a value
    (PerReplica...)"): the symbolic build before the first step all-reduces the whole (x, y) batch in one call, which
    the strategy refuses, and needs only its shapes (the local replica's batch has them); and each step's scalar
    logs are reduced along an axis 0 they do not have, where a plain cross-worker mean is meant. Idempotent; a
    Keras without these internals is left as it is."""
    from keras.src.backend.tensorflow import trainer

    fit_class = getattr(trainer, "TensorFlowTrainer", None)
    if getattr(trainer, "_tls_several_workers", False) or fit_class is None or \
            not hasattr(trainer, "reduce_per_replica") or not hasattr(trainer, "_collective_all_reduce_multi_worker"):
        return
    build, reduce = fit_class._maybe_symbolic_build, trainer.reduce_per_replica

    def local(value):
        return value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and trainer._collective_all_reduce_multi_worker(self.distribute_strategy):
            for _, _, batches in iterator:
                return build(self, data_batch=tf.nest.map_structure(local, next(batches)))
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return reduce(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None) if local(v).shape.rank == 0
                                     else reduce(v, strategy, reduction), values)

    fit_class._maybe_symbolic_build, trainer.reduce_per_replica = symbolic_build, reduce_per_replica
    trainer._tls_several_workers = True


def execute_run(store: RunStore, run_id: str, stop: threading.Event | None = None) -> RunState:
    """Run ``run_id`` to the end in this thread. Never raises: the outcome is the run's state and events."""
    stop = stop or threading.Event()
    run_dir = store.run_dir(run_id)
    emit = _emitter(store, run_id, stop)
    store.set_state(run_id, RunState.RUNNING)
    emit("state", state="running")
    try:
        config = store.config(run_id)
        strategy = get_strategy(config.strategy)
        distribution = distribution_strategy(config.distribute, config.devices)   # before any TF op (multiworker)
        if config.workers > 1 and not os.environ.get("TF_CONFIG"):
            emit("warning", message=f"This run asks for {config.workers} workers but trains in one process here: "
                                    "send it to a Ray cluster (TLS_RAY_ADDRESS) to train it over several.")
        emit("phase", phase="data", message="Reading the images")
        dataset = resolve_dataset(config, run_dir, store.workspace)
        target = resolve_dataset(config, run_dir, store.workspace, target=True)
        atomic_write(run_dir / "data_report.json", json.dumps(_report(dataset), indent=2, ensure_ascii=False))
        for warning in dataset.report.warnings:
            emit("warning", message=warning)
        _seed(config.seed)
        ctx = TrainContext(config, dataset, run_dir, emit, stop, distribution, target=target)
        result = strategy.fit(ctx)
        ctx.stop = threading.Event()   # a model exists: calibrating, saving and evaluating it finish even after
                                       # Stop (``stop`` itself still records one, for the final state)
        emit("phase", phase="calibrate", message="Calibrating the confidence")
        confidence = fit_confidence(ctx, result)     # rescales the final layer: before saving
        ctx.temperature = confidence[0]["temperature"]
        emit("phase", phase="save", message="Saving the model")
        save_result(run_dir, result, strategy)
        save_confidence(run_dir, *confidence)
        emit("phase", phase="evaluate", message="Evaluating on the test images")
        evaluation = evaluate_result(ctx, result, strategy)
        atomic_write(run_dir / "evaluation.json", json.dumps(evaluation, indent=2, ensure_ascii=False, default=str))
        state = RunState.STOPPED if stop.is_set() else RunState.DONE
        metrics = {k: evaluation.get(k) for k in ("accuracy", "macro_f1", "top_k_accuracy") if k in evaluation}
        metrics.update(epochs=ctx.epochs_done, trainable_params=_trainable(result.model),
                       classes=len(result.classes))
        if evaluation.get("target_accuracy") is not None:          # domain adaptation: scored on the target
            metrics["target_accuracy"] = evaluation["target_accuracy"]
        note = _chance_note(store, run_id, config, dataset, metrics, len(result.classes))
        if note:
            metrics["chance_warning"] = note
        store.set_state(run_id, state, metrics=metrics)
        emit(state.value, metrics=metrics)
        return state
    except StopRequested:
        store.set_state(run_id, RunState.STOPPED, error="Stopped before a model was trained.")
        emit("stopped", message="Stopped before a model was trained.")
        return RunState.STOPPED
    except TLError as exc:
        return _fail(store, run_id, str(exc), emit)
    except MemoryError:
        return _fail(store, run_id, "The server ran out of memory: use a smaller backbone, image size or batch size.", emit)
    except Exception as exc:  # the user sees a sentence; the traceback goes to the run's error.log
        (run_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
        log.exception("run %s failed", run_id)
        message = (f"Training failed unexpectedly ({type(exc).__name__}). Try a smaller batch size or another "
                   "backbone; the details are in the run's error.log.")
        return _fail(store, run_id, message, emit)


def _chance_note(store: RunStore, run_id: str, config: RunConfig, dataset: Dataset, metrics: dict,
                 n_classes: int) -> str | None:
    """The plain "no better than guessing" warning (tlcore.results.chance_verdict) for this run, or None."""
    accuracy, which = final_accuracy(metrics, summarize(store.read_events(run_id)).epochs)
    try:
        n_train = len(dataset.split("train"))
    except Exception:  # the count only enriches the sentence
        n_train = None
    return chance_verdict(accuracy, n_classes, weights=config.weights, strategy=config.strategy, n_train=n_train,
                          which=which)


def save_result(run_dir: Path, result, strategy) -> None:
    """model.keras (raw pixels in) and labels.json, written atomically; a strategy may add its own files."""
    save_model(result.model, run_dir / "model.keras")
    atomic_write(run_dir / "labels.json", json.dumps(result.classes, ensure_ascii=False))
    if hasattr(strategy, "save_extra"):
        strategy.save_extra(run_dir, result)


def evaluate_result(ctx, result, strategy) -> dict:
    if hasattr(strategy, "evaluate"):
        return strategy.evaluate(ctx, result)
    return evaluate_model(result.model, ctx.dataset, result.classes, ctx.image_size, batch_size=ctx.config.batch_size,
                          temperature=ctx.temperature)


def _emitter(store: RunStore, run_id: str, stop: threading.Event):
    def emit(type: str, **data) -> None:
        store.append_event(run_id, type, **data)
        if type == "batch" and not stop.is_set() and store.stop_requested(run_id):
            stop.set()  # a stop asked for from another process (CLI, another server) reaches the worker here

    return emit


def _fail(store: RunStore, run_id: str, message: str, emit) -> RunState:
    store.set_state(run_id, RunState.FAILED, error=message)
    emit("failed", message=message)
    return RunState.FAILED


def _report(dataset: Dataset) -> dict:
    return {
        "classes": dataset.classes,
        "counts": {split: dataset.counts(split) for split in ("train", "val", "test")},
        "skipped": [{"file": f, "reason": r} for f, r in dataset.report.skipped],
        "warnings": dataset.report.warnings,
    }


def _trainable(model) -> int:
    return param_counts(model)[0]


def _seed(seed: int) -> None:
    keras.utils.set_random_seed(int(seed))
