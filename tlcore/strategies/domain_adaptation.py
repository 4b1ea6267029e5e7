"""Domain adaptation with DANN (Ganin et al., 2016): labelled source images, unlabelled target images.

The frozen backbone's features are computed once for both domains. A small shared "adapter" layer feeds a
label head (trained on the source labels) and, through a gradient-reversal layer, a domain discriminator
(source or target?). Reversing the discriminator's gradient makes the adapter learn features the discriminator
cannot tell apart, so the label head trained on the source also works on the target. The reversal weight
ramps up as in the paper, λ_p = 2 / (1 + exp(-10 p)) - 1, p the fraction of training done.

The saved model is the inference part only: raw pixels → trunk → adapter → label head → class probabilities
(standard layers; it loads with safe_mode and without tlcore). The same features also train a source-only
baseline with the same layers and steps but no domain loss, so the evaluation shows what adaptation bought.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..catalog import DomainAdaptationOptions
from ..errors import ConfigError, DataError
from ..evaluate import evaluate_model
from ..tf_env import keras, tf
from ._common import as_split, frozen_trunk, loop_callbacks
from ._self_training import adapted_model, self_train
from .base import TrainContext, TrainResult, make_optimizer

layers = keras.layers


@keras.saving.register_keras_serializable(package="tlcore")
class GradientReversal(layers.Layer):
    """Identity on the way forward; multiplies the gradient by -λ on the way back.

    λ is a non-trainable variable (``set_lambda``), so changing it during training retraces nothing.
    """

    def __init__(self, weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.initial_weight = float(weight)

    def build(self, input_shape) -> None:
        self.hp_lambda = self.add_weight(name="lambda", shape=(), trainable=False,
                                         initializer=keras.initializers.Constant(self.initial_weight))

    def set_lambda(self, value: float) -> None:
        self.hp_lambda.assign(float(value))

    def call(self, inputs):
        lam = tf.cast(tf.convert_to_tensor(self.hp_lambda), inputs.dtype)

        @tf.custom_gradient
        def reverse(x):
            def grad(dy):
                return -lam * dy
            return tf.identity(x), grad

        return reverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.initial_weight}


def grl_lambda(progress: float, gamma: float = 10.0, scale: float = 1.0) -> float:
    """The paper's schedule: 0 at the start, → ``scale`` as ``progress`` (0..1) → 1."""
    return scale * (2.0 / (1.0 + math.exp(-gamma * float(progress))) - 1.0)


def target_labels(ctx: TrainContext) -> np.ndarray | None:
    """Class indices of the target images, for scoring only (-1 where unknown), or None when there are none.

    A label comes from the sample itself or, for an unlabelled import, from a class-named folder in its path
    (``webcam/mug/frame_001.jpg`` → "mug"). ``options["target_labels_for_scoring"]``: "auto" (default), False.
    """
    choice = DomainAdaptationOptions.parse(ctx.config.options).target_labels_for_scoring
    if ctx.target is None or choice is False or choice == "off":
        return None
    index = {c: i for i, c in enumerate(ctx.classes)}
    out = []
    for s in ctx.target.samples:
        label = s.label if s.label in index else next(
            (p for p in reversed(Path(s.name.replace("\\", "/")).parts[:-1]) if p in index), None)
        out.append(index.get(label, -1))
    y = np.array(out, dtype="int32")
    if not (y >= 0).any():
        if choice is True:
            ctx.warn("No target image is in a folder named after a class, so target accuracy cannot be measured.")
        return None
    return y


class _Adaptation:
    """The trainable layers on cached features: adapter, label head, and (GRL →) domain discriminator."""

    def __init__(self, feature_size: int, num_classes: int, opts: DomainAdaptationOptions) -> None:
        units, d_units, dropout = opts.adapter_units, opts.discriminator_units, opts.dropout
        self.adapter = layers.Dense(units, activation="relu", name="adapter")
        self.dropout = layers.Dropout(dropout, name="adapter_dropout") if dropout > 0 else None
        self.classifier = layers.Dense(num_classes, activation="softmax", name="predictions")
        self.grl = GradientReversal(0.0, name="gradient_reversal")
        self.discriminator = keras.Sequential([layers.Dense(d_units, activation="relu"),
                                               layers.Dense(d_units, activation="relu"),
                                               layers.Dense(1)], name="domain_discriminator")
        features = keras.Input((feature_size,), name="features")
        hidden = self.adapter(features)
        dropped = self.dropout(hidden) if self.dropout else hidden
        self.train_model = keras.Model(features, [self.classifier(dropped), self.discriminator(self.grl(hidden))],
                                       name="dann_training")

    def head(self, pooled):
        """Adapter → label head on a pooled-feature tensor (the inference path; reuses the trained layers)."""
        hidden = self.adapter(pooled)
        return self.classifier(self.dropout(hidden) if self.dropout else hidden)


class DomainAdaptation:
    def fit(self, ctx: TrainContext) -> TrainResult:
        if ctx.target is None or not ctx.target.samples:
            raise ConfigError("Domain adaptation needs unlabelled target images: choose the target data "
                              "(target_data) as well as the labelled source data.")
        opts = DomainAdaptationOptions.parse(ctx.config.options)     # its checks name a bad value's fix
        trunk = frozen_trunk(ctx)
        xs, ys = self._source(ctx, trunk)
        xt = ctx.extract_features(trunk, "train", dataset=as_split(ctx.target))
        yt = target_labels(ctx)
        val = (ctx.extract_features(trunk, "val"), ctx.labels("val")) if ctx.dataset.split("val") else None
        summary: dict = {"target_images": int(len(xt)), "target_labelled": int((yt >= 0).sum()) if yt is not None else 0}
        if opts.baseline:
            ctx.emit("phase", phase="baseline", message="Training the source-only baseline on the same features")
            base = _Adaptation(xs.shape[1], len(ctx.classes), opts)
            stats = train_dann(ctx, base, xs, ys, xt, yt, val, adversarial=False)
            summary["source_only"] = stats
            ctx.emit("baseline", **{k: v for k, v in stats.items() if v is not None})
        summary["method"] = opts.method
        if opts.method == "self_training":
            head, target_stats, summary["self_training"] = self_train(ctx, xs, ys, xt, yt, val)
            model = adapted_model(trunk, head, target_stats)
            return TrainResult(model, ctx.classes, extra={"domain_adaptation": summary})
        dann = _Adaptation(xs.shape[1], len(ctx.classes), opts)
        summary["dann"] = train_dann(ctx, dann, xs, ys, xt, yt, val, adversarial=True, reporter=True)
        model = keras.Model(trunk.inputs, dann.head(trunk.outputs[0]), name="classifier")
        return TrainResult(model, ctx.classes, extra={"domain_adaptation": summary})

    @staticmethod
    def _source(ctx: TrainContext, trunk: keras.Model) -> tuple[np.ndarray, np.ndarray]:
        if not ctx.dataset.split("train"):
            raise DataError("There are no training images: add images or lower the validation/test split.")
        copies = ctx.config.augment.copies
        return ctx.extract_features(trunk, "train", copies=copies), np.tile(ctx.labels("train"), copies + 1)

    def evaluate(self, ctx: TrainContext, result: TrainResult) -> dict:
        """Source test split as usual, plus the target images (when their labels are known) and the baseline."""
        kw = dict(batch_size=ctx.config.batch_size, temperature=ctx.temperature)
        evaluation = evaluate_model(result.model, ctx.dataset, result.classes, ctx.image_size, **kw)
        summary = result.extra.get("domain_adaptation", {})
        evaluation["domain_adaptation"] = summary
        yt = target_labels(ctx)
        if yt is not None:
            names = [ctx.classes[i] if i >= 0 else None for i in yt]
            view = as_split(ctx.target, "test", labels=names, classes=ctx.classes, keep=[i >= 0 for i in yt])
            target = evaluate_model(result.model, view, result.classes, ctx.image_size, split="test", **kw)
            evaluation["target"] = target
            evaluation["target_accuracy"] = target.get("accuracy")
            baseline = summary.get("source_only") or {}
            if baseline.get("target_accuracy") is not None:
                evaluation["source_only_target_accuracy"] = baseline["target_accuracy"]
        return evaluation


def train_dann(ctx: TrainContext, net: _Adaptation, xs: np.ndarray, ys: np.ndarray, xt: np.ndarray,
               yt: np.ndarray | None, val: tuple[np.ndarray, np.ndarray] | None, *, adversarial: bool,
               reporter: bool = False) -> dict:
    """Train ``net`` on cached features. The source-only baseline is the same loop with λ = 0: its discriminator
    still learns (so its domain accuracy shows how separable the source-only features are), but no gradient
    reaches the adapter through the reversal layer, so the features learn from the source labels alone.

    Each step takes a source batch and an equally large target batch. As in the paper: SGD with momentum 0.9
    (``options["optimizer"]``, default "sgd"; Adam lets the discriminator win), μ0 = ``options["learning_rate"]``
    (default 0.01) annealed as μ_p = μ0 / (1 + 10 p)^0.75. Returns the final metrics; only the DANN run
    (``reporter``) has the run's EventCallback (events, NaN guard); the baseline only honours Stop.
    """
    cfg, opts = ctx.config, DomainAdaptationOptions.parse(ctx.config.options)
    epochs = cfg.epochs
    base_lr = opts.learning_rate
    batch = max(1, min(cfg.batch_size, len(xs)))
    steps = -(-len(xs) // batch)
    total = max(1, epochs * steps)
    lam_max, anneal, d_mult = opts.lambda_max, opts.lr_annealing, opts.discriminator_lr_multiplier
    model = net.train_model
    d_vars = net.discriminator.trainable_variables
    d_ids = {id(v) for v in d_vars}
    f_vars = [v for v in model.trainable_variables if id(v) not in d_ids]
    optimizer = make_optimizer(opts.optimizer, base_lr)
    d_optimizer = make_optimizer(opts.optimizer, base_lr * d_mult)
    optimizer.build(f_vars)        # slots exist before tracing: one trace, not two
    d_optimizer.build(d_vars)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    spec = tf.TensorSpec((None, xs.shape[1]), tf.float32)

    scalar = tf.TensorSpec((), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32), spec, scalar, scalar])
    def step(x_s, y_s, x_t, lam, lr):
        net.grl.hp_lambda.assign(lam)
        optimizer.learning_rate.assign(lr)
        d_optimizer.learning_rate.assign(lr * d_mult)
        with tf.GradientTape() as tape:
            probs, d_s = model(x_s, training=True)
            _, d_t = model(x_t, training=True)
            class_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y_s, probs))
            logits = tf.concat([d_s, d_t], 0)
            domains = tf.concat([tf.zeros_like(d_s), tf.ones_like(d_t)], 0)
            domain_loss = bce(domains, logits)
            loss = class_loss + domain_loss
        grads = tape.gradient(loss, f_vars + d_vars)
        optimizer.apply_gradients(zip(grads[:len(f_vars)], f_vars))
        d_optimizer.apply_gradients(zip(grads[len(f_vars):], d_vars))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probs, 1, output_type=tf.int32), y_s), tf.float32))
        d_acc = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), domains), tf.float32))
        return tf.stack([class_loss, domain_loss, acc, d_acc])

    infer = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    rng = np.random.default_rng(cfg.seed)
    xt_order = np.zeros(0, dtype="int64")
    if reporter:
        callback, callbacks = loop_callbacks(ctx, "adapt", epochs, steps, model)
    else:
        callback, callbacks = None, keras.callbacks.CallbackList([], model=model, epochs=epochs, steps=steps)
    done, stats = 0, {}
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        order = rng.permutation(len(xs))
        sums = np.zeros(4)
        n = 0
        for b in range(steps):
            callbacks.on_train_batch_begin(b)
            progress = done / total
            lam = grl_lambda(progress, scale=lam_max) if adversarial else 0.0
            lr = base_lr / (1.0 + 10.0 * progress) ** 0.75 if anneal else base_lr
            if len(xt_order) < batch:
                xt_order = np.concatenate([xt_order, rng.permutation(len(xt))])
            t_idx, xt_order = xt_order[:batch], xt_order[batch:]
            s_idx = order[b * batch:(b + 1) * batch]
            values = step(xs[s_idx], ys[s_idx].astype("int32"), xt[t_idx], np.float32(lam), np.float32(lr)).numpy()
            sums += values
            n += 1
            done += 1
            callbacks.on_train_batch_end(b, {"loss": float(values[0] + values[1]), "accuracy": float(values[2])})
            if callback.halted if callback else ctx.stop.is_set():
                break
        if callback:
            callback.nan_outcome(ctx.warn)
        stats = _epoch_metrics(infer, sums / max(n, 1), xs, xt, yt, val, grl_lambda(done / total, scale=lam_max)
                               if adversarial else 0.0)
        callbacks.on_epoch_end(epoch, stats)   # the epoch event, or stopped_mid_epoch after a Stop inside it
        if ctx.stop.is_set():
            break
    callbacks.on_train_end()
    if callback:
        ctx.epochs_done += callback.epochs_done
    return stats


def _epoch_metrics(infer, means: np.ndarray, xs, xt, yt, val, lam: float) -> dict:
    """Loss and accuracy (source, training batches), val metrics, target accuracy, balanced domain accuracy."""
    def run(x):
        probs, logits = infer(tf.convert_to_tensor(x))
        return probs.numpy(), logits.numpy().ravel()

    _, ls = run(xs)
    pt, lt = run(xt)
    # Balanced over the two domains, so chance is 0.5 whatever their sizes.
    domain_acc = 0.5 * (float(np.mean(ls <= 0)) + float(np.mean(lt > 0)))
    stats = {"loss": float(means[0] + means[1]), "class_loss": float(means[0]), "domain_loss": float(means[1]),
             "accuracy": float(means[2]), "domain_accuracy": domain_acc, "lambda": float(lam)}
    if val is not None and len(val[0]):
        pv, _ = run(val[0])
        stats["val_loss"] = float(np.mean(keras.losses.sparse_categorical_crossentropy(val[1], pv)))
        stats["val_accuracy"] = float(np.mean(pv.argmax(1) == val[1]))
    if yt is not None:
        known = yt >= 0
        stats["target_accuracy"] = float(np.mean(pt[known].argmax(1) == yt[known]))
    return stats
