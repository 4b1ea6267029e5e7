"""Few-shot learning with class prototypes (metric learning on backbone embeddings).

An image's embedding is the frozen backbone's pooled features (optionally through a small learned projection),
L2-normalised. A class's prototype is the normalised mean of its training embeddings; an image belongs to the
class whose prototype is most similar (cosine). With ``options["projection"]`` the projection is trained
episodically, as in prototypical networks (Snell et al., 2017).

The saved ``model.keras`` is an ordinary classifier: raw pixels → trunk → [projection] → minus the training
mean ("centre", SimpleShot's CL2N; ``options["centre"]``, default on) → UnitNormalization ("l2norm") → Dense
without bias whose kernel is the prototype matrix ("prototypes": cosine similarities) →
Rescaling(1/temperature) → Softmax. ``prototypes.npz`` keeps the class means and counts, ``embedding.keras``
the embedding part. :func:`add_class` adds (or extends) a class from 1-5 images without retraining, and
:func:`episodes` measures N-way K-shot accuracy.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..artifacts import save_model
from ..calls import batched_call, prepare_images
from ..catalog import FewShotOptions
from ..errors import ConfigError, DataError, RunError
from ..evaluate import evaluate_model
from ..predict import load_run_model, model_image_size
from ..runs import atomic_write
from ..tf_env import keras, tf
from ..vectors import unit
from ._common import frozen_trunk, loop_callbacks
from .base import TrainContext, TrainResult, make_optimizer

layers = keras.layers
SPLITS = ("train", "val", "test")


def class_means(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the mean of the (unit) embeddings, and the number of images."""
    emb = unit(embeddings)
    means = np.zeros((num_classes, emb.shape[1]), dtype="float32")
    counts = np.bincount(np.asarray(labels, dtype="int64"), minlength=num_classes).astype("int64")
    np.add.at(means, np.asarray(labels, dtype="int64"), emb)
    return means / np.maximum(counts, 1)[:, None], counts


def episodes(embeddings: np.ndarray, labels: np.ndarray, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
             episodes: int = 600, seed: int = 0) -> tuple[float, float]:
    """N-way K-shot accuracy: mean over random episodes and its 95% confidence half-width (1.96·sd/√episodes).

    Each episode draws ``n_way`` classes, ``k_shot`` support and up to ``n_query`` query images per class (only
    classes with at least ``k_shot + 1`` images take part), and classifies the queries by the nearest prototype.
    """
    emb, labels = unit(embeddings), np.asarray(labels)
    pools = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    eligible = [c for c, idx in pools.items() if len(idx) >= k_shot + 1]
    if n_way < 2 or len(eligible) < n_way:
        raise DataError(f"A {n_way}-way {k_shot}-shot test needs {n_way} classes with at least {k_shot + 1} images "
                        f"each, but only {len(eligible)} have that many; add images or lower N or K.")
    rng = np.random.default_rng(seed)
    accs = np.zeros(int(episodes))
    for e in range(int(episodes)):
        chosen = rng.choice(eligible, size=n_way, replace=False)
        protos, queries, truth = [], [], []
        for j, c in enumerate(chosen):
            idx = rng.permutation(pools[c])
            protos.append(emb[idx[:k_shot]].mean(0))
            q = idx[k_shot:k_shot + n_query]
            queries.append(emb[q])
            truth.extend([j] * len(q))
        sims = np.concatenate(queries) @ unit(np.stack(protos)).T
        accs[e] = float(np.mean(sims.argmax(1) == np.array(truth)))
    ci95 = 1.96 * float(accs.std(ddof=1)) / np.sqrt(len(accs)) if len(accs) > 1 else 0.0
    return float(accs.mean()), float(ci95)


def prototype_head(pooled, prototypes: np.ndarray, temperature: float, projection: layers.Layer | None = None,
                   centre: np.ndarray | None = None):
    """pooled → [projection] → [− centre] → l2norm → cosine similarity to each prototype → softmax(similarity / T)."""
    x = projection(pooled) if projection is not None else pooled
    if centre is not None:
        x = layers.Rescaling(1.0, offset=(-np.asarray(centre, "float32")).tolist(), name="centre")(x)
    return prototype_head_on(layers.UnitNormalization(name="l2norm")(x), prototypes, temperature)


class FewShot:
    def fit(self, ctx: TrainContext) -> TrainResult:
        opts = FewShotOptions.parse(ctx.config.options)     # checks the temperature too
        if not ctx.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        trunk = frozen_trunk(ctx)
        feats = {s: ctx.extract_features(trunk, s) for s in SPLITS if ctx.dataset.split(s)}
        labels = {s: ctx.labels(s) for s in feats}
        projection = None
        if opts.projection:              # without one the catalog plans 1 epoch: the prototypes themselves
            projection = train_projection(ctx, feats, labels)
        centre = None
        if opts.centre:   # SimpleShot's CL2N: subtract the training mean before normalising
            centre = project(feats["train"], projection).mean(0)
        emb = {s: embed(x, projection, centre) for s, x in feats.items()}
        means, counts = class_means(emb["train"], labels["train"], len(ctx.classes))
        empty = [c for c, n in zip(ctx.classes, counts) if n == 0]
        if empty:
            raise DataError(f"The class(es) {', '.join(map(repr, empty))} have no training images; add at least one.")
        temperature = opts.temperature
        if projection is None:   # one "epoch" computed in one go: the prototypes and their metrics
            callback, callbacks = loop_callbacks(ctx, "prototypes", 1, 1)
            callbacks.on_train_begin()
            callbacks.on_epoch_begin(0)
            callbacks.on_epoch_end(0, _proto_metrics(emb, labels, means, temperature))
            callbacks.on_train_end()
            ctx.epochs_done += callback.epochs_done
        model = keras.Model(trunk.inputs, prototype_head(trunk.outputs[0], means, temperature, projection, centre),
                            name="prototype_classifier")
        return TrainResult(model, ctx.classes, extra={
            "means": means, "counts": counts, "temperature": temperature, "embeddings": emb, "labels": labels})

    def save_extra(self, run_dir: Path, result: TrainResult) -> None:
        run_dir = Path(run_dir)
        save_prototypes(run_dir, result.classes, result.extra["means"], result.extra["counts"],
                        result.extra["temperature"])
        embedding = keras.Model(result.model.inputs, result.model.get_layer("l2norm").output, name="embedding")
        save_model(embedding, run_dir / "embedding.keras")

    def evaluate(self, ctx: TrainContext, result: TrainResult) -> dict:
        """The test split as for any classifier, plus N-way K-shot episodes (1 and 5 shots)."""
        evaluation = evaluate_model(result.model, ctx.dataset, result.classes, ctx.image_size,
                                    batch_size=ctx.config.batch_size, temperature=ctx.temperature)
        evaluation["few_shot"] = few_shot_report(result.extra["embeddings"], result.extra["labels"],
                                                 FewShotOptions.parse(ctx.config.options))
        return evaluation


def project(features: np.ndarray, projection: layers.Layer | None = None) -> np.ndarray:
    if projection is not None and len(features):
        return projection(tf.convert_to_tensor(features)).numpy()
    return np.asarray(features, "float32")


def embed(features: np.ndarray, projection: layers.Layer | None = None, centre: np.ndarray | None = None) -> np.ndarray:
    """Unit embeddings of cached pooled features, exactly as the model computes them."""
    x = project(features, projection)
    return unit(x - centre if centre is not None else x)


def _proto_metrics(emb: dict, labels: dict, means: np.ndarray, temperature: float) -> dict:
    """Nearest-prototype accuracy and loss on the training and validation embeddings."""
    out = {}
    for split, prefix in (("train", ""), ("val", "val_")):
        if split not in emb or not len(emb[split]):
            continue
        logits = emb[split] @ unit(means).T / temperature
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        y = labels[split]
        out[f"{prefix}loss"] = float(-logp[np.arange(len(y)), y].mean())
        out[f"{prefix}accuracy"] = float(np.mean(logits.argmax(1) == y))
    return out


def few_shot_report(emb: dict, labels: dict, opts: FewShotOptions) -> dict:
    """5-way 1-shot and 5-way 5-shot accuracy (mean ± CI95) on held-out images (val + test) when they suffice.

    Without a learned projection nothing was fitted to any image, so when the held-out images are too few
    every image may be used; with a projection only held-out images count.
    """
    n_query, count, projected = opts.n_query, opts.eval_episodes, opts.projection
    held = [s for s in ("val", "test") if s in emb and len(emb[s])]
    pools = {"held-out (val + test)": (np.concatenate([emb[s] for s in held]) if held else np.zeros((0, 1)),
                                       np.concatenate([labels[s] for s in held]) if held else np.zeros(0, int))}
    if not projected:
        pools["all images"] = (np.concatenate(list(emb.values())), np.concatenate(list(labels.values())))
    report: dict[str, Any] = {"n_query": n_query, "episodes": count, "results": []}
    total = len(np.unique(np.concatenate(list(labels.values()))))
    wanted = min(5, total)
    for k in (1, 5):
        for pool, (x, y) in pools.items():
            classes_ok = int(sum(np.sum(y == c) >= k + 1 for c in np.unique(y))) if len(y) else 0
            n_way = min(wanted, classes_ok)
            if n_way >= 2 and (n_way == wanted or pool == list(pools)[-1]):
                mean, ci = episodes(x, y, n_way, k, n_query, count, seed=0)
                report["results"].append({"n_way": n_way, "k_shot": k, "accuracy": mean, "ci95": ci, "pool": pool,
                                          "images": int(len(y))})
                report[f"{n_way}-way {k}-shot"] = {"accuracy": mean, "ci95": ci, "pool": pool}
                break
        else:
            report[f"{wanted}-way {k}-shot"] = {"accuracy": None,
                                                "note": f"too few images per class for {k}-shot episodes"}
    return report


def train_projection(ctx: TrainContext, feats: dict, labels: dict) -> layers.Layer:
    """A linear projection trained episodically (prototypical networks) on cached training features."""
    opts, cfg = FewShotOptions.parse(ctx.config.options), ctx.config
    x, y = feats["train"], labels["train"]
    counts = np.bincount(y, minlength=len(ctx.classes))
    n_way = min(opts.n_way, len(ctx.classes))
    k = max(1, min(opts.train_shots, int(counts.min()) - 1))
    q = max(1, min(opts.n_query, int(counts.min()) - k))
    if counts.min() < 2:
        raise DataError("A learned projection needs at least 2 training images per class; add images or turn "
                        "the projection off.")
    temperature = opts.temperature
    projection = layers.Dense(opts.projection_units, name="projection")
    net = keras.Sequential([keras.Input((x.shape[1],)), projection])
    optimizer = make_optimizer(cfg.optimizer, cfg.learning_rate)

    @tf.function
    def step(support, query, truth):
        with tf.GradientTape() as tape:
            s = tf.math.l2_normalize(net(support, training=True), -1)
            protos = tf.math.l2_normalize(tf.reduce_mean(tf.reshape(s, (n_way, k, -1)), 1), -1)
            qe = tf.math.l2_normalize(net(query, training=True), -1)
            logits = tf.matmul(qe, protos, transpose_b=True) / temperature
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(truth, logits, from_logits=True))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), truth), tf.float32))

    rng = np.random.default_rng(cfg.seed)
    pools = [np.flatnonzero(y == c) for c in range(len(ctx.classes))]
    steps = opts.episodes_per_epoch
    callback, callbacks = loop_callbacks(ctx, "episodes", cfg.epochs, steps, net)
    truth = np.repeat(np.arange(n_way, dtype="int32"), q)
    callbacks.on_train_begin()
    for epoch in range(cfg.epochs):
        callbacks.on_epoch_begin(epoch)
        losses, accs = [], []
        for b in range(steps):
            callbacks.on_train_batch_begin(b)
            chosen = rng.choice(len(pools), n_way, replace=False)
            picks = [rng.choice(pools[c], k + q, replace=False) for c in chosen]
            support = np.concatenate([p[:k] for p in picks])
            query = np.concatenate([p[k:] for p in picks])
            loss, acc = step(x[support], x[query], truth)
            losses.append(float(loss))
            accs.append(float(acc))
            callbacks.on_train_batch_end(b, {"loss": losses[-1], "accuracy": accs[-1]})
            if callback.halted:
                break
        callback.nan_outcome(ctx.warn)
        logs = {}
        if len(losses) == steps:   # after a Stop inside the epoch the callback reports stopped_mid_epoch instead
            centre = project(x, projection).mean(0) if opts.centre else None
            emb = {s: embed(f, projection, centre) for s, f in feats.items() if s in ("train", "val")}
            means, _ = class_means(emb["train"], y, len(ctx.classes))
            metrics = _proto_metrics(emb, labels, means, temperature)
            logs = {"loss": float(np.mean(losses)), "accuracy": float(np.mean(accs)),
                    **{k_: v for k_, v in metrics.items() if k_.startswith("val_")}}
        callbacks.on_epoch_end(epoch, logs)
        if callback.halted:
            break
    callbacks.on_train_end()
    ctx.epochs_done += callback.epochs_done
    return projection


# -- run folder: prototypes and adding a class ----------------------------------------------------------------
def save_prototypes(run_dir: Path, classes: Sequence[str], means: np.ndarray, counts: np.ndarray,
                    temperature: float) -> None:
    """``prototypes.npz``: classes, means (of unit embeddings), counts, prototypes (normalised), temperature."""
    buffer = io.BytesIO()
    np.savez(buffer, classes=np.array(list(classes), dtype=str), means=np.asarray(means, "float32"),
             counts=np.asarray(counts, "int64"), prototypes=unit(means), temperature=np.float32(temperature))
    atomic_write(Path(run_dir) / "prototypes.npz", buffer.getvalue())


def load_prototypes(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "prototypes.npz"
    if not path.is_file():
        raise RunError("This run has no prototypes.npz: classes can only be added to a finished few-shot run.")
    with np.load(path, allow_pickle=False) as data:
        return {"classes": [str(c) for c in data["classes"]], "means": data["means"], "counts": data["counts"],
                "temperature": float(data["temperature"])}


def add_class(run_dir: str | Path, name: str, images: Sequence[Any]) -> list[str]:
    """Add class ``name`` from a few images (paths, bytes, PIL images or arrays) to a few-shot run, no retraining.

    When ``name`` already exists its prototype absorbs the new images. Rewrites ``prototypes.npz``,
    ``model.keras`` (one more output) and ``labels.json``; returns the new class list. The run's
    evaluation.json and earlier exports describe the old classes until they are made again.
    """
    run_dir = Path(run_dir)
    name = str(name).strip()
    if not name:
        raise ConfigError("The new class needs a name: type one.")
    items = list(images)
    if not items:
        raise DataError(f"Add at least one image of '{name}'.")
    state = load_prototypes(run_dir)
    model = load_run_model(run_dir)
    try:
        l2norm = model.get_layer("l2norm")
    except ValueError:
        raise RunError("This run's model.keras is not a few-shot prototype model: train it with few_shot.") from None
    embedder = keras.Model(model.inputs, l2norm.output)
    new = unit(batched_call(embedder, prepare_images(items, model_image_size(model))))
    classes, means, counts = state["classes"], state["means"].copy(), state["counts"].copy()
    if name in classes:
        i = classes.index(name)
        means[i] = (means[i] * counts[i] + new.sum(0)) / (counts[i] + len(new))
        counts[i] += len(new)
    else:
        classes = classes + [name]
        means = np.concatenate([means, new.mean(0, keepdims=True)])
        counts = np.concatenate([counts, [len(new)]])
    out = prototype_head_on(l2norm.output, means, state["temperature"])
    rebuilt = keras.Model(model.inputs, out, name=model.name)
    save_model(rebuilt, run_dir / "model.keras")
    atomic_write(run_dir / "labels.json", json.dumps(classes, ensure_ascii=False))
    save_prototypes(run_dir, classes, means, counts, state["temperature"])
    return classes


def prototype_head_on(normalised, prototypes: np.ndarray, temperature: float):
    """Cosine similarity → softmax on an already L2-normalised tensor (the 'l2norm' output)."""
    dense = layers.Dense(len(prototypes), use_bias=False, name="prototypes", trainable=False)
    sims = dense(normalised)
    dense.set_weights([unit(prototypes).T.astype("float32")])
    logits = layers.Rescaling(1.0 / float(temperature), name="temperature")(sims)
    return layers.Softmax(name="probabilities")(logits)
