"""Comparisons: the plan (same data, split and seed; which settings vary), its failure cases, the fair queue that
trains one person's runs one after another, and the side-by-side results."""
from __future__ import annotations

import pytest

from helpers import tiny_config
from tlcore import compare, results
from tlcore.errors import ConfigError
from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunState, RunStore


def base(**overrides) -> RunConfig:
    return tiny_config("dataset:abc", **{"strategy": "feature_extraction", "seed": 7, "val_split": 0.25, **overrides})


def test_titles_match_the_strategy_registry():
    from tlcore import catalog
    from tlcore.strategies import STRATEGIES

    assert compare.TITLES == {name: s.title for name, s in STRATEGIES.items()}
    assert dict(compare.TITLES) == {name: e.title for name, e in catalog.CATALOG.items()}    # read from the catalog


@pytest.mark.parametrize("strategies, backbones, freezes, expected", [
    (["feature_extraction", "scratch"], None, None,
     [("feature_extraction", "mobilenet_025"), ("scratch", "mobilenet_025")]),
    (["scratch", "fine_tune"], ["vgg16", "resnet50"], None,
     [("scratch", "vgg16"), ("fine_tune", "vgg16"), ("scratch", "resnet50"), ("fine_tune", "resnet50")]),
    (["fine_tune", "feature_extraction"], None, ["Top 10 layers trainable", "Nothing frozen"],   # freeze varies
     [("fine_tune", "mobilenet_025"), ("fine_tune", "mobilenet_025"), ("feature_extraction", "mobilenet_025")]),
    (["few_shot", "few_shot"], None, None, [("few_shot", "mobilenet_025")]),                   # duplicates dropped
])
def test_plan_varies_only_what_was_chosen(strategies, backbones, freezes, expected):
    configs = compare.plan(base(), strategies, backbones, freezes)
    assert [(c.strategy, c.backbone) for c in configs] == expected
    assert len({c.group for c in configs}) == 1 and configs[0].group
    for c in configs:                                            # same images, split and seed as the base
        assert (c.data, c.seed, c.val_split, c.test_split, c.epochs) == ("dataset:abc", 7, 0.25, 0.2, 3)
        assert c.name.startswith(f"Comparison {c.group[:4]} ") and compare.TITLES[c.strategy] in c.name
    if freezes:
        assert [c.freeze["mode"] for c in configs[:2]] == ["all_but_top", "none"]
        assert configs[0].freeze["n"] == 10 and "Nothing frozen" in configs[1].name


def test_plan_fits_the_image_size_and_weights_to_each_backbone():
    configs = compare.plan(base(image_size=32, weights="/tmp/my_mobilenet.h5"), ["feature_extraction"],
                           ["mobilenet_025", "inceptionv3"])
    assert [c.image_size for c in configs] == [32, 75]            # InceptionV3 needs at least 75 px
    assert [c.weights for c in configs] == ["/tmp/my_mobilenet.h5", "imagenet"]


def test_strategy_inputs_travel_only_with_their_strategy():
    dann = base(strategy="domain_adaptation", target_data="dataset:target", options={"baseline": False})
    a, b = compare.plan(dann, ["domain_adaptation", "scratch"])
    assert (a.target_data, a.options) == ("dataset:target", {"baseline": False})
    assert (b.target_data, b.options) == (None, {})
    assert "domain_adaptation" in compare.available(dann) and "scratch" in compare.available(base())


@pytest.mark.parametrize("config, strategies, backbones, freezes, message", [
    (base(), [], None, None, "Choose at least one strategy"),
    (base(), ["magic"], None, None, "Unknown strategy 'magic'"),
    (base(), ["domain_adaptation"], None, None, "needs unlabelled target images"),
    (base(), ["multitask"], None, None, "needs a dataset with extra label columns"),
    (base(), ["scratch"], ["alexnet"], None, "Unknown backbone 'alexnet'"),
    (base(), ["fine_tune"], None, ["Half frozen"], "Unknown frozen-layer setting 'Half frozen'"),
    (base(backbone_file="/x/own.keras"), ["scratch"], ["vgg16"], None, "cannot be swapped"),
    (base(), ["feature_extraction", "scratch", "fine_tune"], ["vgg16", "vgg19", "resnet50", "xception", "densenet121"],
     None, "would queue 15 runs; the limit is 12"),
])
def test_impossible_comparisons_say_what_to_change(config, strategies, backbones, freezes, message):
    with pytest.raises(ConfigError, match=message):
        compare.plan(config, strategies, backbones, freezes)


def test_missing_weights_names_the_backbones_that_would_fail(imagenet_mobilenet):
    configs = compare.plan(base(weights="imagenet", image_size=None), ["feature_extraction", "scratch"],
                           ["mobilenet_025", "vgg16"])
    assert compare.missing_weights(configs) == ["VGG16"]      # MobileNet α=0.25 is cached; scratch needs none


def test_one_persons_runs_train_one_after_another_and_others_go_first(workspace, colour_folder):
    """Two slots; Ann queues a comparison of two runs, then Bob one run. Bob does not wait for Ann's second run,
    and Ann's runs never overlap, so their training times compare."""
    manager = JobManager(RunStore(workspace), max_concurrent=2)
    try:
        cfg = tiny_config(colour_folder, backbone="vgg16", epochs=2)
        ann = compare.submit(manager, compare.plan(cfg, ["feature_extraction", "scratch"]), "ann")
        bob = manager.submit(tiny_config(colour_folder, backbone="vgg16", epochs=2), "bob")
        for run_id in (*ann, bob):
            assert manager.wait(run_id, 600) == RunState.DONE, manager.store.get(run_id).error
        a1, a2, b = (manager.store.get(r) for r in (*ann, bob))
        assert a2.started >= a1.finished                       # one after another
        assert b.started < a2.started                          # Bob was not kept waiting behind Ann's comparison
        rows = results.compare_runs(manager.store, "ann")
        assert {r["run"] for r in rows} == set(ann)
        assert {r["group"] for r in rows} == {manager.store.config(ann[0]).group}
        f1 = results.per_class_f1(manager.store, ann)
        assert sorted(r["class"] for r in f1) == ["blue", "green", "red"]
        assert all(set(r) == {"class", *ann} and all(0 <= r[i] <= 1 for i in ann) for r in f1)
    finally:
        manager.shutdown()


def test_stop_owner_stops_a_whole_comparison(workspace, colour_folder):
    manager = JobManager(RunStore(workspace), max_concurrent=1)
    manager.shutdown()                                          # nothing starts: every run stays queued
    ids = compare.submit(manager, compare.plan(tiny_config(colour_folder), ["feature_extraction", "scratch"]), "ann")
    other = manager.submit(tiny_config(colour_folder), "bob")
    assert sorted(manager.stop_owner("ann")) == sorted(ids)
    assert [manager.store.get(r).state for r in ids] == [RunState.STOPPED] * 2
    assert manager.queue_position(other) == 1


def test_what_cleaning_bought_pairs_runs_with_the_same_settings_on_each_version(tmp_path, workspace):
    """Runs on v1 and on its cleaned v2 with the same settings are paired, with the change in accuracy; a run with
    other settings has no partner and is left out."""
    import shutil

    from helpers import write_colour_images
    from tlcore import workspace as ws
    from tlcore.data import from_folder
    from tlcore.dataset_imports import _import

    owner = "u:" + "e" * 24
    src = write_colour_images(tmp_path / "src", per_class=8)
    shutil.copy(src / "red" / "1.png", src / "blue" / "wrong.png")
    (workspace / "data").mkdir()
    v1 = _import(owner, "colours", "server", lambda dest: from_folder(src, dest), workspace)
    v2 = ws.new_version(owner, v1.id, {"remove": ["blue/wrong.png"]}, workspace=workspace)
    manager = JobManager(RunStore(workspace), max_concurrent=1)
    try:
        same = dict(backbone="vgg16", epochs=2)
        ids = [manager.submit(tiny_config(f"dataset:{d.id}", **same), owner) for d in (v1, v2)]
        lonely = manager.submit(tiny_config(f"dataset:{v1.id}", backbone="vgg16", epochs=1), owner)
        for run_id in (*ids, lonely):
            assert manager.wait(run_id, 600) == RunState.DONE, manager.store.get(run_id).error
        assert compare.cleaning_effect(manager.store, "u:" + "f" * 24) == []     # another person sees nothing
        rows = compare.cleaning_effect(manager.store, owner)
    finally:
        manager.shutdown()
    assert [r["run"] for r in rows] == ids
    assert [r["version"] for r in rows] == ["v1: as imported", "v2: 1 image removed"]
    acc = [manager.store.get(r).metrics["accuracy"] for r in ids]
    assert [r["change"] for r in rows] == [None, round(100 * (acc[1] - acc[0]), 1)]
    assert all(r["test images"] > 0 and r["settings"].startswith("Feature extraction · VGG16") for r in rows)
