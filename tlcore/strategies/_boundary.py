"""Fine-tuning that does not recompute what is frozen: train the unfrozen top on activations cached at the freeze
boundary (issue 11, part 2).

The classifier is cut after its last fixed backbone layer (:func:`tlcore.model.split_at_boundary`). The frozen part
(resize → [augment] → preprocess → frozen backbone layers) runs once per image; the top (the layers that train →
pool → head) then trains for every epoch on those activations, with the same optimizer object, learning rate,
callbacks, early stopping and class weights as ``model.fit`` of the whole model, and on the same batches in the same
order (the same shuffle, seed and buffer). The top shares the classifier's layer objects, so the classifier that is
saved is the one that trained, with its optimizer state.

- **Augmentation off**: the activations of the train and validation images are computed in one pass and kept in the
  feature store (:mod:`tlcore.feature_store`, keyed by image content, the frozen part's weights, size, preprocessing
  and the boundary layer); float16 when they are large.
- **Augmentation on, ``cache_copies`` > 0**: as feature extraction does for pooled features, the frozen part runs
  once over the clean images and ``cache_copies`` augmented copies (one store block, keyed by the images, the
  augmentation and its RNG state); each epoch trains on all of them (the same copies every epoch, not fresh ones).
- **Augmentation on, ``cache_copies`` = 0**, nothing frozen, or a backbone that is no chain at the boundary: the
  whole model trains on images every epoch, as before, and the run's events say why.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import feature_store
from ..calls import over_files
from ..model import Split, SplitError, split_at_boundary
from ..tf_env import tf
from .base import StopRequested, TrainContext

FLOAT16_ABOVE = 256 * 2**20     # float32 bytes of activations above which they are kept as float16
MAX_BYTES = 2 * 2**30           # above this (stored) the cache would not fit well in memory: train on images


def plan(ctx: TrainContext, model: Any) -> tuple[Split | None, str, str]:
    """``(split, storage dtype, reason)``: the cut to train on, or None and the reason the model trains on images."""
    aug = ctx.config.augment
    if aug.enabled and aug.copies <= 0:
        return None, "", ("augmentation is on with cache_copies = 0, so every epoch draws fresh augmented images "
                          "and the whole model runs on images each epoch")
    try:
        split = split_at_boundary(model)
    except SplitError as exc:
        return None, "", str(exc)
    n = len(ctx.paths("train")) * (1 + aug.copies) + len(ctx.paths("val"))
    full = n * split.values_per_image * 4
    dtype = "float16" if full > FLOAT16_ABOVE else "float32"
    stored = full // 2 if dtype == "float16" else full
    if stored > MAX_BYTES:
        return None, "", (f"the activations at {split.boundary} would take {stored / 2**30:.1f} GB, more than "
                          f"{MAX_BYTES / 2**30:.0f} GB (a smaller image size or more frozen layers would fit)")
    return split, dtype, ""


def _stop(ctx: TrainContext) -> None:
    if ctx.stop.is_set():
        raise StopRequested()


def _calls(ctx: TrainContext, split: Split) -> tuple[Any, Any]:
    spec = [tf.TensorSpec((None, ctx.image_size, ctx.image_size, 3), tf.float32)]
    lower = split.lower
    return (tf.function(lambda x: lower(x, training=False), input_signature=spec),
            tf.function(lambda x: lower(x, training=True), input_signature=spec))


def _pass(ctx: TrainContext, split: Split, paths: list[str], calls: list, label: str, dtype: str) -> np.ndarray:
    """The frozen part over image files, batch by batch (Stop is honoured between batches)."""
    def progress(done: int, total: int) -> None:
        ctx.emit("progress", phase="features", split=label, done=done, total=total)

    out = over_files(split.lower, paths, ctx.image_size, ctx.config.batch_size, calls=calls,
                     before_batch=lambda: _stop(ctx), after_batch=progress)
    return np.asarray(out, dtype=dtype)


def activations(ctx: TrainContext, split: Split, paths: list[str], *, dtype: str = "float32",
                label: str = "train+val (freeze boundary)") -> tuple[np.ndarray, int]:
    """Clean activations at the boundary for ``paths`` (in the storage dtype) and how many came from the store."""
    clean, _ = _calls(ctx, split)
    check = lambda: _stop(ctx)  # noqa: E731
    compute = lambda miss: _pass(ctx, split, miss, [clean], label, dtype)  # noqa: E731
    store = getattr(ctx, "feature_store", None)     # the workspace's feature store (tlcore.feature_store)
    if store is None or not getattr(store, "enabled", False) or not paths:
        return compute(paths), 0
    key = ctx.feature_key(split.lower, boundary=split.boundary, dtype=dtype)
    found = store.per_image(key, paths, compute, dtype=dtype, shape=split.shape, interrupt=check)
    ctx.emit("features", split=label, reused=int(found.reused), total=len(paths))
    return np.asarray(found.array), int(found.reused)


def augmented(ctx: TrainContext, split: Split, paths: list[str], copies: int, *, dtype: str = "float32",
              label: str = "train (augmented, freeze boundary)") -> tuple[np.ndarray, int]:
    """``copies`` augmented passes of the frozen part over ``paths``, stored as one block (the random draws depend
    on the batch and the RNG state, which the block's key holds and a hit restores), and how many were reused."""
    _, call = _calls(ctx, split)
    layers = [layer for layer in split.lower.layers if layer.name == "augment"]
    rng = list(layers[0].variables) if layers else []

    def compute() -> tuple[np.ndarray, dict]:
        out = _pass(ctx, split, paths, [call] * copies, label, dtype)
        return out, {f"rng{i}": np.asarray(v.numpy()) for i, v in enumerate(rng)}

    store = getattr(ctx, "feature_store", None)
    if store is None or not getattr(store, "enabled", False) or not paths:
        return compute()[0], 0
    key = ctx.feature_key(split.lower, boundary=split.boundary, dtype=dtype)
    fields = dict(copies=copies, batch_size=ctx.config.batch_size, seed=ctx.config.seed,
                  augment=feature_store.model_fingerprint(layers[0], skip=()) if layers else None,
                  rng=[np.asarray(v.numpy()).tolist() for v in rng])
    try:
        name = feature_store.block_key(key, [feature_store.file_hash(p) for p in paths], **fields)
    except OSError:             # an unreadable file: computed (and reported) as before, not stored
        return compute()[0], 0
    block = store.block(key, name, compute, dtype=dtype, interrupt=lambda: _stop(ctx))
    for i, v in enumerate(rng):
        v.assign(block.meta.get(f"rng{i}", v.numpy()))       # as if the pass had run: later draws agree
    ctx.emit("features", split=label, reused=int(block.reused), total=len(paths) * copies)
    return np.asarray(block.array), int(block.reused)


def _dataset(ctx: TrainContext, x: np.ndarray, y: np.ndarray, *, shuffle: bool) -> tf.data.Dataset:
    """Cached activations batched as :meth:`TrainContext.images` batches the files: the same shuffle (buffer, seed,
    reshuffled each epoch) before batching, so both see the same batches in the same order."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(max(1, len(x)), seed=ctx.config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(ctx.config.batch_size)
    if x.dtype != np.float32:
        ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_top(ctx: TrainContext, model: Any, epochs: int, phase: str = "fine-tune") -> bool:
    """Fine-tune ``model`` (compiled, frozen as wanted) on cached boundary activations. False, with the reason in
    the run's events (``cache`` event, ``used: false``), when it must train on images (``ctx.train_full``)."""
    train_paths, val_paths = ctx.paths("train"), ctx.paths("val")
    if epochs <= 0 or not train_paths:
        return False
    split, dtype, reason = plan(ctx, model)
    if split is None:
        ctx.emit("cache", what="freeze boundary", used=False, reason=reason,
                 message=f"Fine-tuning runs the whole model on the images every epoch: {reason}.")
        return False
    copies, n = ctx.config.augment.copies, len(train_paths)
    try:
        clean, reused = activations(ctx, split, train_paths + val_paths, dtype=dtype)
        extra = None
        if copies:
            extra, more = augmented(ctx, split, train_paths, copies, dtype=dtype)
            reused += more
    except StopRequested:       # the head has trained: keep that model, as a Stop during model.fit would
        return True
    x_train = clean[:n] if extra is None else np.concatenate([clean[:n], extra])
    y_train = np.tile(ctx.labels("train"), copies + 1)
    ctx.emit("cache", what="freeze boundary", used=True, boundary=split.boundary, shape=list(split.shape),
             dtype=dtype, images=n + len(val_paths), activations=len(x_train) + len(val_paths), reused=reused,
             copies=copies,
             megabytes=round((clean.nbytes + (extra.nbytes if extra is not None else 0)) / 2**20, 1),
             message=_message(split, n, len(val_paths), reused, copies))
    with ctx.distribution.scope():      # the optimizer of ctx.compile(model, ...): the saved model keeps its state
        split.top.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train = _dataset(ctx, x_train, y_train, shuffle=True)
    val = _dataset(ctx, clean[n:], ctx.labels("val"), shuffle=False) if val_paths else None
    ctx.fit(split.top, train, epochs=epochs, phase=phase, validation_data=val,
            steps=-(-len(x_train) // ctx.config.batch_size))
    return True


def _message(split: Split, n_train: int, n_val: int, reused: int, copies: int) -> str:
    total = n_train * (1 + copies) + n_val
    text = (f"Fine-tuning trains only the layers after {split.boundary} on their cached input: the frozen layers "
            f"ran once per image, not once per epoch ({reused:,} of {total:,} activations reused from the feature "
            f"store).")
    if copies:
        text += (f" Augmentation is on: {copies} augmented copies of each training image were cached at the "
                 f"boundary, so each epoch trains on {n_train * (copies + 1):,} images (the same copies every "
                 f"epoch, not fresh ones); set cache_copies to 0 to augment afresh every epoch, which runs the "
                 f"whole model every epoch.")
    return text
