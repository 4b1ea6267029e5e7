"""The data check's parts on known answers: label errors, copies, leaks, outliers, class names, feature reuse."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import write_colour_images
from tlcore import audit, audit_similar, feature_store
from tlcore.data import DataReport, Dataset, Sample


def _clusters(n_per: int = 60, classes: int = 4, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim)) * 3
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dim)) for c in centres]).astype("float32")
    y = np.repeat([f"c{i}" for i in range(classes)], n_per).tolist()
    return x, y, rng


def test_flipped_labels_are_the_top_suspects_with_their_true_class_suggested():
    x, y, rng = _clusters()
    truth = list(y)
    flips = rng.choice(len(y), 12, replace=False)
    for i in flips:
        y[i] = "c0" if y[i] != "c0" else "c1"
    found = audit.label_issues(y, x)
    assert {i for i, *_ in found} <= set(flips.tolist()) and len(found) >= 9       # cleanlab's pruning is cautious
    assert all(given == y[i] and suggested == truth[i] and 0 < score <= 1 for i, given, suggested, score in found)
    assert [s for *_, s in found] == sorted((s for *_, s in found), reverse=True)
    ranked = np.argsort(-audit.suspicion(y, x))[:12]
    assert set(ranked.tolist()) == set(flips.tolist())


@pytest.mark.parametrize("labels, expected", [
    (["a", "a", "b"], []),                               # a class of one image cannot be checked: nothing else to learn
    (["a"] * 3, []),                                     # one class: nothing to compare with
], ids=["one-image-class", "one-class"])
def test_label_issues_on_too_little_data_is_empty(labels, expected):
    assert audit.label_issues(labels, np.eye(len(labels), 4, dtype="float32")) == expected


def test_exact_and_near_copies_and_the_leaks_between_splits():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, 64)).astype("float32")
    sig = rng.normal(0, 1, (len(x), 63)).astype("float32")
    n = len(x)
    copies = [3, 70, 120, 199]
    x = np.concatenate([x, x[copies] + rng.normal(0, 0.05, (4, x.shape[1])).astype("float32")])
    sig = np.concatenate([sig, sig[copies] + rng.normal(0, 0.05, (4, 63)).astype("float32")])
    hashes = [f"h{i}" for i in range(len(x))]
    hashes[10] = hashes[11] = "same"
    pairs = audit_similar.near_pairs(x, sig, same=hashes)
    assert {(a, b) for a, b, *_ in pairs} == {(c, n + k) for k, c in enumerate(copies)}
    assert all(0.9 < sim <= 1 for *_, sim in pairs)
    assert audit_similar.exact_groups(hashes) == [[10, 11]]
    splits = ["train"] * len(x)
    splits[n + 1], splits[11] = "test", "val"
    leaks = audit_similar.leak_pairs([[10, 11]] + [[a, b] for a, b, *_ in pairs], splits)
    assert sorted(leaks) == [([10, 11], ["train", "val"]), ([70, n + 1], ["test", "train"])]


def test_an_image_unlike_its_class_is_an_outlier():
    x, y, rng = _clusters()
    x[5] = rng.normal(0, 1, x.shape[1]) * 8
    found = audit.outliers(y, x)
    assert found and found[0][0] == 5 and found[0][1] > 3.5
    assert len(found) <= 3


@pytest.mark.parametrize("classes, expected", [
    (["Red Circle", "red circle", "dog"], [{"names": ["Red Circle", "red circle"], "reason": "they differ only by case"}]),
    (["cat ", "cat", "dog"], [{"names": ["cat", "cat "], "reason": "they differ only by spaces"}]),
    (["Big  Dog", "big dog"], [{"names": ["Big  Dog", "big dog"], "reason": "they differ only by case and spaces"}]),
    (["cat", "cats", "Dog"], []),
], ids=["case", "trailing-space", "case-and-spaces", "distinct"])
def test_class_names_that_differ_only_by_case_or_spaces(classes, expected):
    assert audit.class_name_clashes(classes) == expected


def _dataset(tmp_path, per_class=8):
    root = write_colour_images(tmp_path / "src", per_class=per_class)
    samples = [Sample(str(p), p.parent.name, "train", f"{p.parent.name}/{p.name}") for p in sorted(root.rglob("*.png"))]
    return Dataset(tmp_path, sorted({s.label for s in samples}), samples, DataReport())


def test_the_result_names_source_paths_and_counts_balance(tmp_path):
    ds = _dataset(tmp_path)
    red = next(i for i, s in enumerate(ds.samples) if s.name == "red/0.png")
    ds.samples.append(Sample(ds.samples[red].path, "blue", "test", "blue/copy-of-red.png"))
    rng = np.random.default_rng(0)
    colour = {"red": 0, "green": 1, "blue": 2}
    feats = np.stack([np.eye(3)[colour[s.label]] * 5 + rng.normal(0, 0.3, 3) for s in ds.samples]).astype("float32")
    feats[-1] = feats[red]
    result = audit.audit_dataset(ds, features=feats, store=feature_store.FeatureStore(tmp_path / "fs"))
    assert set(audit.KINDS) <= set(result)
    assert result["duplicates"] == [{"paths": ["red/0.png", "blue/copy-of-red.png"], "similarity": 1.0}]
    assert result["leaks"][0]["paths"] == ["red/0.png", "blue/copy-of-red.png"]
    assert result["leaks"][0]["splits"] == ["test", "train"] and result["leaks"][0]["kind"] == "exact"
    assert result["class_balance"]["counts"] == {"blue": 9, "green": 8, "red": 8}
    assert not result["class_balance"]["imbalanced"]
    assert "1 duplicate groups" in audit.summary_line(result)


def test_training_runs_and_the_check_share_the_stored_features(tmp_path, imagenet_mobilenet):
    """A run's TrainContext fills the store; the check reads the same entries back (and the other way round)."""
    from tlcore.audit_features import pooled_features
    from tlcore.runs import RunConfig
    from tlcore.strategies.base import TrainContext

    ds = _dataset(tmp_path, per_class=3)
    store = feature_store.FeatureStore(tmp_path / "features")
    config = RunConfig(data=str(tmp_path), backbone="mobilenet_025", weights="imagenet", image_size=224)
    ctx = TrainContext(config, ds, tmp_path / "run", emit=lambda *a, **k: None)
    ctx.feature_store = store
    model = ctx.build()
    paths = [s.path for s in ds.samples]
    from_run = ctx.features_of(model, paths[:5])
    feats, reused = pooled_features(paths, image_size=224, store=store)
    assert reused == 5
    np.testing.assert_allclose(feats[:5], from_run, rtol=1e-4, atol=1e-4)
    events = []
    ctx.emit = lambda kind, **kw: events.append((kind, kw))
    ctx.features_of(model, paths)
    assert ("features", {"split": "", "reused": len(paths), "total": len(paths)}) in events


def test_a_warm_check_needs_no_model_and_a_wrong_remembered_key_is_never_used(tmp_path, imagenet_mobilenet,
                                                                             monkeypatch):
    from tlcore import audit_features

    ds = _dataset(tmp_path, per_class=2)
    paths = [s.path for s in ds.samples]
    store = feature_store.FeatureStore(tmp_path / "features")
    first, _ = audit_features.pooled_features(paths[:4], store=store)
    remembered = json.loads((store.root / "pool-keys.json").read_text())
    [(key, width)] = remembered.values()
    assert key == audit_features.feature_trunk()[1] and width == first.shape[1]

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built")

    with monkeypatch.context() as patch:                          # as in a new process: no model, no TensorFlow
        patch.setattr(audit_features, "feature_trunk", no_model)
        again, reused = audit_features.pooled_features(paths[:4], store=store)
    assert reused == 4 and np.array_equal(again, first)
    (store.root / "pool-keys.json").write_text(json.dumps({k: ["0" * 64, width] for k in remembered}))
    feats, reused = audit_features.pooled_features(paths, store=store)      # two new images: the model runs
    assert reused == 4 and np.allclose(feats[:4], first)
    assert json.loads((store.root / "pool-keys.json").read_text()) == remembered
    assert not (store.root / ("0" * 64)).exists()


def test_the_pass_gives_the_signatures_thumbnails_from_the_pixels_it_decoded(tmp_path):
    """The backbone pass's thumbnails are those of a decode-only pass, and its features are the plain pass's."""
    from tlcore import audit_features

    paths = [s.path for s in _dataset(tmp_path, per_class=3).samples]
    heard: dict = {}
    off = feature_store.FeatureStore(tmp_path / "off", limit_bytes=0)          # nothing stored: both passes compute
    opts = dict(backbone="mobilenet_025", weights="none", image_size=32, store=off)
    with_thumbs, _ = audit_features.pooled_features(paths, thumbs=lambda files, t: heard.update(zip(files, t)), **opts)
    plain, _ = audit_features.pooled_features(paths, **opts)
    np.testing.assert_allclose(with_thumbs, plain, rtol=1e-5, atol=1e-5)
    assert sorted(heard) == sorted(paths)
    alone = audit_features.thumbnails(paths, 32)
    assert alone.shape == (len(paths), 32, 32, 3)
    np.testing.assert_allclose(np.stack([heard[p] for p in paths]), alone, atol=1e-3)


def test_a_resized_recompressed_copy_has_a_close_signature_and_another_picture_does_not(tmp_path):
    from PIL import Image

    from tlcore.audit_features import thumbnails

    yy, xx = np.mgrid[0:200, 0:200]
    scene = np.stack([(xx * 1.2) % 255, (yy * 0.8 + 40 * np.sin(xx / 15)) % 255, (xx + yy) % 255], -1).astype("uint8")
    other = np.stack([(yy * 1.3) % 255, 255 - (xx * 0.7) % 255, (xx * yy / 200) % 255], -1).astype("uint8")
    Image.fromarray(scene).save(tmp_path / "a.png")
    Image.fromarray(scene).resize((140, 140)).save(tmp_path / "copy.jpg", quality=45)
    Image.fromarray(other).save(tmp_path / "b.png")
    files = [str(tmp_path / n) for n in ("a.png", "copy.jpg", "b.png")]
    sig = audit_similar.signature_rows(thumbnails(files, 96))
    dct = sig[:, :audit_similar.DCT]
    assert sig.shape == (3, audit_similar.DCT + 3) and np.allclose(np.linalg.norm(dct, axis=1), 1, atol=1e-4)
    assert dct[0] @ dct[1] > 0.95 and dct[0] @ dct[2] < 0.5
    assert np.abs(sig[0, audit_similar.DCT:] - sig[1, audit_similar.DCT:]).max() < audit_similar.COLOUR_GAP / 3


def test_look_alike_pictures_on_other_backgrounds_are_not_near_copies():
    """Features and grey signatures alike, mean colours apart: not a pair; the same with one colour: a pair."""
    rng = np.random.default_rng(1)
    feats = rng.normal(0, 1, (30, 16)).astype("float32")
    feats[1] = feats[0] + rng.normal(0, 0.01, 16)
    dct = rng.normal(0, 1, (30, audit_similar.DCT)).astype("float32")
    dct[1] = dct[0] + rng.normal(0, 0.01, audit_similar.DCT)
    colours = rng.uniform(0, 1, (30, 3)).astype("float32")
    colours[1] = colours[0] + audit_similar.COLOUR_GAP / 2
    sigs = np.concatenate([dct, colours], axis=1)
    assert [(a, b) for a, b, *_ in audit_similar.near_pairs(feats, sigs)] == [(0, 1)]
    sigs[1, audit_similar.DCT] = sigs[0, audit_similar.DCT] + 2 * audit_similar.COLOUR_GAP      # another background
    assert audit_similar.near_pairs(feats, sigs) == []


def test_the_server_warm_up_builds_the_checks_model_only_when_its_weights_are_here(monkeypatch, imagenet_mobilenet):
    from tlcore import audit_features, backbones

    with monkeypatch.context() as patch:
        patch.setattr(backbones, "weights_cached", lambda *a, **k: False)
        assert audit_features.warm() is False
    assert audit_features.warm() is True
    trunk = audit_features.feature_trunk()[0]
    assert trunk in audit_features._WITH_THUMBS                  # traced: the first check does not pay for it
