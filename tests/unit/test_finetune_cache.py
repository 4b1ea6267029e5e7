"""Cached fine-tuning (issue 11, part 2): the top trains on activations cached at the freeze boundary.

Cached and uncached fine-tuning give the same weights (same batches, same order, same optimizer); a changed image,
backbone, size, weights or freeze point misses the feature store; where the cut is invalid the whole model trains.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers import tiny_config
from tlcore.data import load_data
from tlcore.model import FreezeConfig, SplitError, build_model, split_at_boundary
from tlcore.strategies import TrainContext
from tlcore.strategies._boundary import activations, plan, train_top
from tlcore.tf_env import keras

TOP = {"mode": "all_but_top", "n": 20, "layer": None}


@pytest.fixture
def dataset(colour_folder, tmp_path):
    return load_data(colour_folder, tmp_path / "data", val_split=0.2, test_split=0.2)


@pytest.fixture
def store_root(tmp_path, monkeypatch):
    """A private feature store for the test (the workspace's ``features`` folder)."""
    monkeypatch.setenv("TLS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("TLS_FEATURE_CACHE", raising=False)
    return tmp_path / "ws"


def _context(dataset, tmp_path, events=None, **overrides) -> TrainContext:
    values = dict(strategy="fine_tune", fine_tune_epochs=1, freeze=TOP, seed=0)
    values.update(overrides)
    config = tiny_config(dataset.root, **values)
    sink = events if events is not None else []
    return TrainContext(config, dataset, tmp_path / "run", lambda kind, **data: sink.append((kind, data)),
                        threading.Event())


def _fine_tune(ctx: TrainContext, start: list | None, cached: bool):
    """The second phase of FineTune on a model frozen at ``ctx.config.freeze``, from the weights ``start``."""
    keras.utils.set_random_seed(0)
    model = ctx.build(freeze_cfg=ctx.config.freeze)
    if start is not None:
        model.set_weights(start)
    ctx.compile(model, 1e-3)
    before = model.get_config()
    if cached:
        assert train_top(ctx, model, 1)
    else:
        ctx.train_full(model, 1, phase="fine-tune")
    assert model.get_config() == before, "the classifier's graph is the one it was built with"
    return model


def test_cached_and_uncached_fine_tuning_give_the_same_weights(dataset, tmp_path, store_root):
    keras.utils.set_random_seed(0)
    start = _context(dataset, tmp_path).build(freeze_cfg=FreezeConfig(**TOP)).get_weights()
    events: list = []
    cached = _fine_tune(_context(dataset, tmp_path, events), start, cached=True)
    plain = _fine_tune(_context(dataset, tmp_path), start, cached=False)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), start))
    assert moved > 1e-4, "one epoch must change the trained weights"
    for a, b in zip(cached.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    cache = [data for kind, data in events if kind == "cache"]
    assert cache and cache[0]["used"] and cache[0]["boundary"] == "conv_pw_10_relu"
    assert [data["epoch"] for kind, data in events if kind == "epoch"] == [1]
    # The classifier that is saved is the usual one, with the optimizer that trained (its state included).
    path = tmp_path / "model.keras"
    cached.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert len(loaded.optimizer.variables) == len(plain.optimizer.variables)
    image = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    np.testing.assert_allclose(loaded(image), cached(image), atol=1e-6)


def test_the_top_model_shares_the_classifiers_weights_and_output(dataset, tmp_path):
    model = _context(dataset, tmp_path).build(freeze_cfg=FreezeConfig(**TOP))
    split = split_at_boundary(model)
    image = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(split.top(split.lower(image)), model(image, training=False), atol=1e-6)
    assert [v.path for v in split.top.trainable_variables] == [v.path for v in model.trainable_variables]
    assert not split.lower.trainable_weights or all(not v.trainable for v in split.lower.trainable_weights)


def _store_miss(dataset, tmp_path, **overrides) -> int:
    """How many of the images' boundary activations the store already had, for a context with ``overrides``."""
    keras.utils.set_random_seed(overrides.pop("init_seed", 0))
    ctx = _context(dataset, tmp_path, **overrides)
    split, dtype, _ = plan(ctx, ctx.build(freeze_cfg=ctx.config.freeze))
    _, reused = activations(ctx, split, ctx.paths("train"), dtype=dtype)
    return reused


def test_a_changed_image_backbone_size_weights_or_freeze_point_misses_the_store(dataset, tmp_path, store_root):
    pytest.importorskip("tlcore.feature_store")
    n = len(dataset.split("train"))
    assert _store_miss(dataset, tmp_path) == 0
    assert _store_miss(dataset, tmp_path) == n                       # the same run again: every image reused
    from PIL import Image

    changed = dataset.split("train")[0].path                         # one image changes its content
    Image.fromarray(255 - np.asarray(Image.open(changed).convert("RGB"))).save(changed)
    assert _store_miss(dataset, tmp_path) == n - 1
    assert _store_miss(dataset, tmp_path, backbone="mobilenet_050") == 0
    assert _store_miss(dataset, tmp_path, image_size=40) == 0
    assert _store_miss(dataset, tmp_path, init_seed=1) == 0           # other weights (random init, another seed)
    assert _store_miss(dataset, tmp_path, freeze={"mode": "all_but_top", "n": 40, "layer": None}) == 0


def test_weights_from_another_file_miss_the_store(dataset, tmp_path, store_root):
    pytest.importorskip("tlcore.feature_store")
    keras.utils.set_random_seed(3)
    from tlcore.backbones import create_backbone

    path = tmp_path / "other.weights.h5"
    create_backbone("mobilenet_025", "none", 32).save_weights(path)
    assert _store_miss(dataset, tmp_path) == 0
    assert _store_miss(dataset, tmp_path, weights=str(path)) == 0
    assert _store_miss(dataset, tmp_path, weights=str(path)) == len(dataset.split("train"))


def test_augmentation_caches_copies_at_the_boundary_or_says_why_not(dataset, tmp_path, store_root):
    n = len(dataset.split("train"))
    weights = []
    for attempt in range(2):                # the second run finds the clean and the augmented activations
        events: list = []
        keras.utils.set_random_seed(0)
        ctx = _context(dataset, tmp_path, events, augment={"enabled": True, "cache_copies": 2})
        model = ctx.build(freeze_cfg=ctx.config.freeze)
        ctx.compile(model, 1e-3)
        assert train_top(ctx, model, 1)
        weights.append(model.get_weights())
        cache = next(data for kind, data in events if kind == "cache")
        assert cache["used"] and cache["copies"] == 2 and "augmented copies" in cache["message"]
        assert cache["activations"] == 3 * n + len(dataset.split("val"))
        assert cache["reused"] == (cache["activations"] if attempt else 0)
        batches = [data for kind, data in events if kind == "batch"]
        assert batches[-1]["steps"] == -(-3 * n // ctx.config.batch_size)
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    events.clear()
    ctx = _context(dataset, tmp_path, events, augment={"enabled": True, "cache_copies": 0})
    model = ctx.build(freeze_cfg=ctx.config.freeze)
    ctx.compile(model, 1e-3)
    assert not train_top(ctx, model, 1)
    cache = next(data for kind, data in events if kind == "cache")
    assert not cache["used"] and "cache_copies = 0" in cache["reason"]


def _residual_backbone() -> keras.Model:
    L = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    y = L.Conv2D(8, 3, padding="same", name="branch_a")(x)
    y = L.Conv2D(8, 3, padding="same", name="branch_b")(y)
    out = L.Add(name="add")([x, y])
    return keras.Model(inputs, L.Conv2D(8, 1, name="last")(out), name="residual")


def test_a_cut_inside_a_residual_block_falls_back_with_the_reason(dataset, tmp_path):
    backbone = _residual_backbone()
    for layer in backbone.layers:
        layer.trainable = layer.name in ("branch_b", "add", "last")
    model = build_model(backbone, None, 3, tiny_config(dataset.root).head, 32)
    with pytest.raises(SplitError, match="skips over"):
        split_at_boundary(model)
    for layer in backbone.layers:           # cut after the block: a single tensor, so it splits
        layer.trainable = layer.name == "last"
    split = split_at_boundary(model)
    assert split.boundary == "add" and split.shape == (32, 32, 8)


def test_nothing_frozen_means_nothing_to_cache(dataset, tmp_path):
    ctx = _context(dataset, tmp_path, freeze={"mode": "none", "n": 0, "layer": None})
    split, _, reason = plan(ctx, ctx.build(freeze_cfg=ctx.config.freeze))
    assert split is None and "nothing frozen" in reason


def test_fine_tune_runs_end_to_end_on_the_cache_and_a_second_run_reuses_it(colour_folder, workspace):
    from strategy_helpers import run
    from tlcore.runs import RunState

    config = tiny_config(colour_folder, strategy="fine_tune", epochs=1, fine_tune_epochs=2, freeze=TOP)
    reused = []
    for _ in range(2):
        store, run_id, state, run_dir = run(workspace, config)
        assert state == RunState.DONE, store.get(run_id).error
        events = store.read_events(run_id)
        cache = [e for e in events if e["type"] == "cache"]
        assert cache and cache[0]["used"], cache
        assert [e["phase"] for e in events if e["type"] == "epoch"] == ["head", "fine-tune", "fine-tune"]
        reused.append(cache[0]["reused"])
        keras.models.load_model(run_dir / "model.keras", safe_mode=True)
    if (workspace / "features").is_dir():                    # the workspace's feature store is on
        assert reused[0] == 0 and reused[1] == cache[0]["images"]
