"""Contracts driven by the registries (as timm and Keras test theirs).

- Every strategy in the catalog trains a tiny run (random weights, 32 px, 1 epoch), saves a model that loads with
  ``safe_mode=True``, evaluates, predicts and exports (the first, default export format).
- Every backbone builds at its minimum input size with random weights.
- A toy strategy, written here in a few lines and added with one catalog entry, is offered on the Train page and
  trains through the runner, with no page changed.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import tiny_config
from strategy_helpers import keras_classes, run, write_images
from tlcore import catalog
from tlcore.backbones import BACKBONES, create_backbone, get_spec
from tlcore.runs import RunState

COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def _write_two_column_csv(root: Path, per_cell: int = 4) -> Path:
    """colour × bright images and a CSV (path, colour, bright): the input of a strategy that needs label columns."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    (root / "img").mkdir(parents=True)
    for colour, rgb in COLOURS.items():
        for bright, scale in (("yes", 1.0), ("no", 0.4)):
            for i in range(per_cell):
                name = f"img/{colour}_{bright}_{i}.png"
                pixels = np.array(rgb) * scale + rng.normal(0, 12, (32, 32, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / name)
                rows.append([name, colour, bright])
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "colour", "bright"], *rows])
    return root / "labels.csv"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contracts")
    return {"images": write_images(root / "colours", COLOURS, 8),
            "target": write_images(root / "target", COLOURS, 4, noise=40, seed=1),
            "csv": _write_two_column_csv(root / "table")}


# How this test meets each need a catalog entry may declare (a new kind of need must be added here).
NEED_INPUTS = {
    "target_images": lambda d: {"target_data": str(d["target"])},
    "label_columns": lambda d: {"data": str(d["csv"]), "label_columns": ["colour", "bright"]},
}


def contract_config(entry: catalog.StrategyEntry, data: dict[str, Path], **overrides):
    values = {"strategy": entry.name, "epochs": 1, "fine_tune_epochs": 1, "val_split": 0.25, "test_split": 0.25}
    for need in entry.needs:
        values.update(NEED_INPUTS[need](data))
    values.update(overrides)
    return tiny_config(values.pop("data", data["images"]), **values)


def check_finished_run(entry: catalog.StrategyEntry, run_dir: Path, images: list[str]) -> None:
    """Saved, reloaded with safe_mode, evaluated, predicted and exported, as the entry's ``produces`` says."""
    from tlcore import export
    from tlcore.evaluate import evaluate_run
    from tlcore.predict import Predictor
    from tlcore.tf_env import keras

    for name in ("config.json", "model.keras", "labels.json", "evaluation.json"):
        assert (run_dir / name).is_file(), name
    if "tasks" in entry.produces:
        assert (run_dir / "tasks.json").is_file()
    if "prototypes" in entry.produces:
        assert (run_dir / "prototypes.npz").is_file() and (run_dir / "embedding.keras").is_file()
    keras.saving.load_model(run_dir / "model.keras", safe_mode=True, compile=False)
    assert not [c for c in keras_classes(run_dir / "model.keras") if c.startswith("tlcore")]

    evaluation = evaluate_run(run_dir)
    assert evaluation["n"] > 0 and 0 <= evaluation["accuracy"] <= 1
    classes = json.loads((run_dir / "labels.json").read_text())
    predictor = Predictor.from_run(run_dir)
    answers = predictor.predict(images, top_k=2)
    assert len(answers) == len(images) and all(a[0][0] in classes for a in answers)
    if "tasks" in entry.produces:
        tasks = json.loads((run_dir / "tasks.json").read_text())
        assert set(evaluation["tasks"]) == set(tasks) and predictor.multitask
        assert set(predictor.predict_tasks(images)[0]) == set(tasks)

    fmt = export.FORMATS[0]
    exported = export.export_run(run_dir, fmt, run_dir / "exports")
    assert exported.name == export.ARTIFACTS[fmt] and (run_dir / "exports" / "model_card.md").is_file()
    again = keras.saving.load_model(exported, safe_mode=True, compile=False)
    if not predictor.multitask:
        np.testing.assert_allclose(np.asarray(again(predictor.prepare(images), training=False)),
                                   predictor.probabilities(images), atol=1e-5)
    # ONNX too, in onnxruntime: one output per task for multi-task runs, the main task's as the studio's
    from tlcore.onnx_export import OUTPUT_NAME, onnx_probabilities
    from tlcore.tasks import output_keys

    onnx_file = export.export_run(run_dir, "onnx", run_dir / "exports")
    main = output_keys(list(predictor.tasks))[next(iter(predictor.tasks))] if predictor.multitask else OUTPUT_NAME
    batch = predictor.prepare(images)
    np.testing.assert_allclose(onnx_probabilities(onnx_file, batch, main),
                               np.asarray(predictor.model(batch, training=False)), atol=1e-5)


@pytest.mark.parametrize("name", list(catalog.CATALOG))
def test_every_strategy_trains_saves_reloads_evaluates_predicts_and_exports(name, inputs, tmp_path):
    entry = catalog.entry(name)
    store, run_id, state, run_dir = run(tmp_path / "ws", contract_config(entry, inputs))
    assert state == RunState.DONE, store.get(run_id).error
    check_finished_run(entry, run_dir, sorted(str(p) for p in inputs["images"].rglob("*.png"))[:2])
    epochs = store.get(run_id).metrics["epochs"]
    if "search" in entry.produces:       # a searching strategy trains the epochs its winner needed
        search = json.loads((run_dir / "search.json").read_text())
        assert search["trials"] and epochs == search["epochs"]
        assert json.loads((run_dir / "best_config.json").read_text())["epochs"] == epochs
    else:
        assert epochs == catalog.planned_epochs(store.config(run_id))


@pytest.mark.parametrize("name", list(catalog.CATALOG))
def test_every_catalog_entry_describes_itself(name):
    entry = catalog.entry(name)
    assert entry.title and len(entry.description) > 80 and entry.line and entry.summary
    assert set(entry.needs) <= set(catalog.NEEDS) and set(entry.produces) <= set(catalog.OUTPUTS)
    assert isinstance(entry.impl, str) and ":" in entry.impl
    defaults = entry.options.parse({})
    assert all(getattr(defaults, o.name) == o.default and o.help for o in entry.options.schema())
    assert catalog.planned_epochs(tiny_config("x", strategy=name, epochs=3)) >= 1


def test_unknown_strategy_lists_the_valid_ones():
    from tlcore.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown strategy 'magic'. Choose one of: auto, feature_extraction"):
        catalog.entry("magic")


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_at_its_minimum_size_with_random_weights(name):
    spec = get_spec(name)
    model = create_backbone(name, "none", spec.min_size)
    assert model.output_shape[-1] == spec.feature_size
    assert model.count_params() == spec.params


# -- the toy strategy: one class and one catalog entry; no page changes ------------------------------------------
class LinearProbe:
    """A frozen backbone and one softmax layer on its pooled features (no hidden layer), trained on cached
    features: the shared building blocks of TrainContext, composed differently."""

    def fit(self, ctx):
        from tlcore.config import FreezeConfig, HeadConfig
        from tlcore.strategies import TrainResult

        ctx.config = dataclasses.replace(ctx.config, head=HeadConfig(enabled=False))
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
        ctx.train_head(model, ctx.config.epochs, phase="probe")
        return TrainResult(model, ctx.classes)


TOY = catalog.StrategyEntry(
    "linear_probe", "Linear probe (toy)",
    "A toy strategy for the tests: the backbone stays frozen and one softmax layer learns the classes from the "
    "cached features, with no hidden layer in between.",
    "one softmax layer on frozen features (a test's toy)", "one softmax layer learned on frozen features",
    LinearProbe)


@pytest.fixture
def toy_strategy():
    catalog.register(TOY)
    try:
        yield TOY
    finally:
        catalog.unregister(TOY.name)


def test_a_toy_strategy_is_offered_on_the_train_page_and_trains_through_the_runner(toy_strategy, tmp_path,
                                                                                    monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    from _apptools import class_zip, new_app, no_crash, png_bytes

    from tlcore import workspace as ws
    from tlcore.jobs import get_manager
    from tlcore.strategies import STRATEGIES, get_strategy

    monkeypatch.setenv("TLS_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("TLS_WARM_TF", "0")
    assert isinstance(get_strategy("linear_probe"), LinearProbe) and STRATEGIES["linear_probe"].title == TOY.title
    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    info = ws.import_zip(owner, class_zip(COLOURS, per_class=8), "colours.zip",
                         val_split=0.25, test_split=0.25)
    ws.update_draft(owner, dataset_id=info.id, model_title="MobileNet α=0.25",
                    model={"backbone": "mobilenet_025", "backbone_file": None, "weights": "none", "image_size": 32,
                           "freeze": {"mode": "all_but_top", "n": 20, "layer": None},
                           "head": {"units": 16, "dropout": 0.0, "enabled": True}},
                    train={"batch_size": 8, "early_stopping": 0, "learning_rate": 1e-2})
    at = new_app({"u": token}).run()
    at.switch_page("views/train.py").run(timeout=120)
    no_crash(at)
    assert TOY.title in at.radio(key="strategy").options
    at.radio(key="strategy").set_value("linear_probe").run()
    assert any(TOY.description in i.value for i in at.info)
    at.number_input(key="epochs").set_value(1).run()
    at.button(key="start_button").click().run(timeout=60)
    no_crash(at)
    run_id = at.query_params["run"]
    manager = get_manager()
    assert manager.wait(run_id, timeout=240) == RunState.DONE, manager.store.get(run_id).error
    config = manager.store.config(run_id)
    assert config.strategy == "linear_probe" and config.name.startswith(TOY.title)
    assert {e.get("phase") for e in manager.store.read_events(run_id) if e["type"] == "epoch"} == {"probe"}
    images = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, rgb in zip(images, COLOURS.values()):
        path.write_bytes(png_bytes(rgb))
    check_finished_run(TOY, manager.store.run_dir(run_id), [str(p) for p in images])
