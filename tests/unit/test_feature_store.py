"""The feature store: content-addressed entries shared by every run, torn entries recomputed, LRU-bounded, one
computation for two callers, and TrainContext.features_of (the one entry point of frozen-backbone features) using it."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_config, write_colour_images
from tlcore import feature_store as fs
from tlcore.feature_store import FeatureStore

KEY, OTHER = "ab" * 32, "cd" * 32          # keys are sha256 hex digests


def _files(tmp_path: Path, n: int = 6) -> list[str]:
    out = []
    for i in range(n):
        path = tmp_path / "img" / f"{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i]) * 100)
        out.append(str(path))
    return out


class Counting:
    """A fake backbone: row i = the file's first byte repeated; remembers which files it was asked for."""

    def __init__(self, width: int = 4) -> None:
        self.calls: list[list[str]] = []
        self.width = width

    def __call__(self, paths: list[str]) -> np.ndarray:
        self.calls.append(list(paths))
        return np.array([[Path(p).read_bytes()[0]] * self.width for p in paths], "float32")


# ------------------------------------------------------------------------------------------------ the store alone
def test_second_lookup_reuses_every_entry_and_only_misses_are_computed(tmp_path):
    store, compute, paths = FeatureStore(tmp_path / "features", 10**9), Counting(), _files(tmp_path)
    first = store.per_image(KEY, paths[:4], compute)
    assert (first.reused, first.total) == (0, 4) and compute.calls == [paths[:4]]
    second = store.per_image(KEY, paths, compute)       # 4 stored, 2 new: one pass over the 2 misses
    assert (second.reused, second.total) == (4, 6) and compute.calls[-1] == paths[4:]
    np.testing.assert_array_equal(second.array[:, 0], np.arange(6))
    copy = tmp_path / "elsewhere.bin"                          # the same bytes under another name: a hit
    copy.write_bytes(Path(paths[2]).read_bytes())
    assert store.per_image(KEY, [str(copy)], compute).reused == 1
    assert store.per_image(OTHER, paths[:1], compute).reused == 0    # another key: a miss


def test_a_changed_image_byte_misses(tmp_path):
    store, compute, paths = FeatureStore(tmp_path / "features", 10**9), Counting(), _files(tmp_path, 3)
    store.per_image(KEY, paths, compute)
    Path(paths[1]).write_bytes(b"\x09" + Path(paths[1]).read_bytes()[1:])
    again = store.per_image(KEY, paths, compute)
    assert again.reused == 2 and compute.calls[-1] == [paths[1]] and again.array[1, 0] == 9


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "shape", "empty"])
def test_a_torn_or_corrupted_entry_is_recomputed_never_used(tmp_path, damage):
    store, compute, paths = FeatureStore(tmp_path / "features", 10**9), Counting(), _files(tmp_path, 3)
    store.per_image(KEY, paths, compute)
    entry = store.entry_path(KEY, fs.file_hash(paths[1]))
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[:-3])
    elif damage == "flip":
        entry.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "magic":
        entry.write_bytes(b"XXXX" + data[4:])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:      # a valid entry of the wrong shape
        fs._write_entry(entry, np.zeros(7, "float32"))
    again = store.per_image(KEY, paths, compute, shape=(4,))
    assert again.reused == 2 and compute.calls[-1] == [paths[1]]
    np.testing.assert_array_equal(again.array[1], [1, 1, 1, 1])
    assert store.per_image(KEY, paths, compute, shape=(4,)).reused == 3     # rewritten whole


def test_lru_eviction_keeps_the_store_under_its_bound(tmp_path):
    paths = _files(tmp_path, 8)
    probe = FeatureStore(tmp_path / "probe", 10**9)
    probe.per_image(KEY, paths[:1], Counting(width=2000))
    one = probe.size_bytes()                                   # one entry's size on disk
    store, compute = FeatureStore(tmp_path / "features", int(one * 4.5)), Counting(width=2000)
    store.per_image(KEY, paths[:4], compute)
    store.per_image(KEY, paths[:1], compute)              # paths[0] used again: the most recent now
    store.per_image(KEY, paths[4:6], compute)                  # 6 entries > 4.5: the 2 least recently used go
    assert store.size_bytes() <= store.limit
    kept = {Path(p).name for p in paths if store.entry_path(KEY, fs.file_hash(p)).exists()}
    assert kept == {"0.bin", "3.bin", "4.bin", "5.bin"}, kept


def test_retention_drops_entries_unused_since_the_cutoff(tmp_path):
    store, paths = FeatureStore(tmp_path / "features", 10**9), _files(tmp_path, 3)
    store.per_image(KEY, paths, Counting())
    old = store.entry_path(KEY, fs.file_hash(paths[0]))
    os.utime(old, (1_000_000, 1_000_000))
    assert store.cleanup(cutoff=2_000_000) == 1 and not old.exists() and len(store.entries()) == 2


def test_two_threads_asking_for_the_same_entries_compute_them_once(tmp_path):
    store, paths = FeatureStore(tmp_path / "features", 10**9), _files(tmp_path, 4)
    computing, second_waits, results, calls = threading.Event(), threading.Event(), {}, []

    def slow(files):
        calls.append(files)
        computing.set()
        assert second_waits.wait(60), "the second caller never waited on the lock"
        return Counting()(files)

    first = threading.Thread(target=lambda: results.update(a=store.per_image(KEY, paths, slow)))
    first.start()
    assert computing.wait(60)
    results["b"] = store.per_image(KEY, paths, slow, interrupt=second_waits.set)
    first.join(60)
    assert len(calls) == 1 and results["a"].reused == 0 and results["b"].reused == 4
    np.testing.assert_array_equal(results["a"].array, results["b"].array)


def test_a_zero_bound_turns_the_store_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_FEATURE_CACHE_GB", "0")
    store, compute, paths = FeatureStore(tmp_path / "features"), Counting(), _files(tmp_path, 2)
    assert not store.enabled
    assert store.per_image(KEY, paths, compute).reused == 0 == store.per_image(KEY, paths, compute).reused
    assert not (tmp_path / "features").exists()


# ------------------------------------------------------------------------------------------------ with Keras
@pytest.fixture
def colours(tmp_path):
    from tlcore.data import load_data

    return load_data(write_colour_images(tmp_path / "colours", per_class=4), tmp_path / "ds", val_split=0.25,
                     test_split=0)


def _ctx(tmp_path, dataset, events, **overrides):
    from tlcore.strategies.base import TrainContext
    from tlcore.tf_env import keras

    keras.utils.set_random_seed(0)         # random weights from one seed: the same weights, the same entries
    ctx = TrainContext(tiny_config(dataset.root, **overrides), dataset, tmp_path / "run",
                       lambda kind, **data: events.append((kind, data)))
    ctx.feature_store = FeatureStore(tmp_path / "features", 10**9)
    return ctx


def _reuse(events):
    found = [d for kind, d in events if kind == "features"]
    return sum(d["reused"] for d in found), sum(d["total"] for d in found)


def test_a_second_run_reuses_every_feature_and_gets_the_same_ones(tmp_path, colours):
    from tlcore.progress import reuse_text, summarize

    features = []
    for _ in range(2):
        events: list = []
        ctx = _ctx(tmp_path, colours, events)
        model = ctx.build()
        features.append(ctx.extract_features(model, "train"))
        features.append(ctx.extract_features(model, "val"))
        runs_events = events
    n = len(colours.split("train")) + len(colours.split("val"))
    assert _reuse(runs_events) == (n, n)
    assert not [d for kind, d in runs_events if kind == "progress"], "nothing went through the backbone"
    np.testing.assert_allclose(features[0], features[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[1], features[3], rtol=1e-5, atol=1e-6)
    text = reuse_text(summarize([{"type": kind, **d} for kind, d in runs_events]))
    assert text == f"{n} of {n} features reused"


@pytest.mark.parametrize("change", [{"backbone": "mobilenet_050"}, {"image_size": 40}, {"seed": 1}])
def test_another_backbone_size_or_random_init_misses(tmp_path, colours, change):
    events: list = []
    ctx = _ctx(tmp_path, colours, events)
    ctx.extract_features(ctx.build(), "train")
    other = _ctx(tmp_path, colours, events, **change)
    if "seed" in change:
        from tlcore.tf_env import keras

        keras.utils.set_random_seed(1)
    events.clear()
    other.extract_features(other.build(), "train")
    assert _reuse(events) == (0, len(colours.split("train")))


def test_a_weights_file_is_known_by_its_values(tmp_path, colours):
    from tlcore.backbones import create_backbone
    from tlcore.tf_env import keras

    files = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        files.append(tmp_path / f"w{seed}.weights.h5")
        create_backbone("mobilenet_025", "none", 32).save_weights(files[-1])
    got = []
    for weights in (files[0], files[1], files[0]):
        events: list = []
        ctx = _ctx(tmp_path, colours, events, weights=str(weights))
        ctx.extract_features(ctx.build(), "train")
        got.append(_reuse(events)[0])
    n = len(colours.split("train"))
    assert got == [0, 0, n]


def test_another_freeze_boundary_misses(tmp_path, colours):
    from tlcore.model import get_backbone
    from tlcore.tf_env import keras

    ctx = _ctx(tmp_path, colours, [])
    base = get_backbone(ctx.build())
    cut = [keras.Model(base.inputs, base.get_layer(name).output) for name in ("conv_pw_5_relu", "conv_pw_6_relu")]
    keys = [ctx.feature_key(m, boundary=name) for m, name in zip(cut, ("conv_pw_5_relu", "conv_pw_6_relu"))]
    assert keys[0] != keys[1] != ctx.feature_key(cut[0], boundary="conv_pw_5_relu", dtype="float16")
    assert fs.model_fingerprint(cut[0]) != fs.model_fingerprint(cut[1])


def test_augmented_copies_are_reused_as_a_block_and_restore_the_random_state(tmp_path):
    from tlcore.data import load_data

    dataset = load_data(write_colour_images(tmp_path / "c", per_class=3), tmp_path / "ds", val_split=0, test_split=0)
    runs = []
    for _ in range(2):
        events: list = []
        ctx = _ctx(tmp_path, dataset, events, augment={"enabled": True, "cache_copies": 2, "flip": True,
                                                      "rotation": 0.1})
        model = ctx.build()
        x = ctx.features_of(model, ctx.paths("train"), copies=2, clean_pass=False)
        state = [np.asarray(v.numpy()) for v in model.get_layer("augment").variables]
        runs.append((x, state, _reuse(events)))
    n = len(dataset.split("train"))
    assert runs[0][2] == (0, 2 * n) and runs[1][2] == (2 * n, 2 * n)
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_the_train_page_stage_line_says_how_many_features_were_reused():
    from tlcore.progress import stages, summarize

    events = [{"type": "state", "state": "running"}, {"type": "phase", "phase": "build"},
              {"type": "features", "split": "train+val", "reused": 1197, "total": 1222},
              {"type": "phase", "phase": "head", "epochs": 10}]
    assert ("Computing features: 1,197 of 1,222 features reused", "done") in stages(summarize(events))
