"""Multi-task strategy: both tasks learned, missing labels masked, per-task outputs and metrics, birds5 + attribute."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from strategy_helpers import config, epochs, keras_classes, run, tiny_backbone
from tlcore.data import DataReport, Dataset, Sample
from tlcore.errors import ConfigError
from tlcore.model import HeadConfig
from tlcore.runs import RunConfig, RunState
from tlcore.strategies.base import TrainContext
from tlcore.strategies.multitask import (build_heads, compile_heads, loss_weights, output_keys, predict_tasks,
                                         task_targets)

COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
MISSING_EVERY = 5   # every 5th row leaves "bright" empty


def write_two_task_csv(root: Path, per_cell: int = 8, size: int = 32, seed: int = 0) -> Path:
    """colour × bright (yes/no) images and a CSV with columns path, colour, bright (some bright cells empty)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows, n = [], 0
    (root / "img").mkdir(parents=True)
    for colour, rgb in COLOURS.items():
        for bright, scale in (("yes", 1.0), ("no", 0.4)):
            for i in range(per_cell):
                pixels = np.array(rgb) * scale + rng.normal(0, 12, (size, size, 3))
                name = f"img/{colour}_{bright}_{i}.png"
                Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / name)
                n += 1
                rows.append([name, colour, "" if n % MISSING_EVERY == 0 else bright])
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "colour", "bright"], *rows])
    return root / "labels.csv"


@pytest.fixture(scope="module")
def two_task_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    data = write_two_task_csv(root)
    cfg = config(data, tiny_backbone(root / "bb.keras"), strategy="multitask", label_columns=["colour", "bright"],
                 epochs=25, learning_rate=1e-2, options={"loss_weights": {"colour": 1.0, "bright": 2.0}})
    return run(root / "ws", cfg)


def test_multitask_learns_both_tasks(two_task_run):
    store, run_id, state, run_dir = two_task_run
    assert state == RunState.DONE, store.get(run_id).error
    assert json.loads((run_dir / "tasks.json").read_text()) == {"colour": ["blue", "green", "red"], "bright": ["no", "yes"]}
    assert json.loads((run_dir / "labels.json").read_text()) == ["blue", "green", "red"]
    history = epochs(store, run_id, "heads")
    for key in ("colour_accuracy", "bright_accuracy", "val_colour_accuracy", "val_bright_accuracy", "colour_loss"):
        assert key in history[-1], key
    assert history[-1]["loss"] < history[0]["loss"]
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert set(evaluation["tasks"]) == {"colour", "bright"}
    assert evaluation["task_accuracy"]["colour"] >= 0.9
    assert evaluation["task_accuracy"]["bright"] >= 0.9
    assert evaluation["accuracy"] == evaluation["task_accuracy"]["colour"]
    bright = evaluation["tasks"]["bright"]
    assert bright["n"] + bright["missing"] == evaluation["tasks"]["colour"]["n"]
    assert [row["class"] for row in bright["per_class"]] == ["no", "yes"]
    assert np.array(bright["confusion_matrix"]).sum() == bright["n"]


def test_saved_model_answers_every_task(two_task_run, tmp_path):
    from PIL import Image

    store, run_id, state, run_dir = two_task_run
    assert not any("tlcore" in name for name in keras_classes(run_dir / "model.keras"))
    images = []
    for colour, bright in (("red", 1.0), ("blue", 0.4)):
        path = tmp_path / f"{colour}{bright}.png"
        Image.fromarray(np.full((40, 40, 3), np.array(COLOURS[colour]) * bright, dtype="uint8")).save(path)
        images.append(path)
    answers = predict_tasks(run_dir, images, top_k=2)
    assert [a["colour"][0][0] for a in answers] == ["red", "blue"]
    assert [a["bright"][0][0] for a in answers] == ["yes", "no"]
    assert all(len(a["bright"]) == 2 and abs(sum(p for _, p in a["bright"]) - 1) < 1e-4 for a in answers)


def _ctx(tmp_path) -> TrainContext:
    samples = [Sample(f"/x/{i}.png", ["red", "blue"][i % 2], "train", f"{i}.png",
                      {"bright": None if i == 1 else ["yes", "no"][i % 2]}) for i in range(4)]
    dataset = Dataset(tmp_path, ["blue", "red"], samples, DataReport(), {"bright": ["no", "yes"]})
    cfg = RunConfig(data="x", strategy="multitask", label_columns=["colour", "bright"], learning_rate=1e-2)
    return TrainContext(cfg, dataset, tmp_path, lambda *a, **k: None)


def test_a_masked_rows_label_does_not_change_the_loss(tmp_path):
    ctx = _ctx(tmp_path)
    tasks = {"colour": ["blue", "red"], "bright": ["no", "yes"]}
    y, w = task_targets(ctx.dataset.samples, tasks, "colour")
    assert w["bright"].tolist() == [1, 0, 1, 1] and w["colour"].tolist() == [1, 1, 1, 1]
    heads, model = build_heads(tasks, 6, HeadConfig(8, 0.0))
    compile_heads(ctx, model, loss_weights(tasks, {"bright": 2.0}))
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")

    def loss(bright):
        labels = {"colour": y["colour"], "bright": np.array(bright, dtype="int32")}
        return model.evaluate(x, labels, sample_weight=w, verbose=0, return_dict=True)

    base = loss(y["bright"])
    flipped_masked = loss([y["bright"][0], 1 - y["bright"][1], *y["bright"][2:]])
    flipped_labelled = loss([1 - y["bright"][0], *y["bright"][1:]])
    assert flipped_masked["loss"] == pytest.approx(base["loss"], abs=1e-7)
    assert flipped_masked["bright_accuracy"] == pytest.approx(base["bright_accuracy"])
    assert flipped_labelled["loss"] != pytest.approx(base["loss"], abs=1e-4)


def test_loss_weights_and_output_keys():
    tasks = {"species": ["a", "b"], "bright thing": ["no", "yes"], "bright/thing": ["x", "y"]}
    keys = output_keys(list(tasks))
    assert keys == {"species": "species", "bright thing": "bright_thing", "bright/thing": "bright_thing_2"}
    assert loss_weights(tasks, {"bright thing": 0.5}) == {"species": 1.0, "bright_thing": 0.5, "bright_thing_2": 1.0}
    with pytest.raises(ConfigError, match="unknown task"):
        loss_weights(tasks, {"colour": 2})


def test_multitask_needs_two_label_columns(tmp_path):
    from helpers import write_colour_images

    data = write_colour_images(tmp_path / "colours", per_class=5)
    store, run_id, state, _ = run(tmp_path / "ws", config(data, tiny_backbone(tmp_path / "bb.keras"),
                                                          strategy="multitask", epochs=1))
    assert state == RunState.FAILED
    assert "two label columns" in store.get(run_id).error


# Passerines (perching birds) among the birds5 species: a real yes/no attribute derived from the species.
PASSERINE = {"ASIAN GREEN BEE EATER": "no", "D-ARNAUDS BARBET": "no", "HOUSE FINCH": "yes", "OVENBIRD": "yes",
             "RUFOUS TREPE": "yes"}


def test_birds5_species_and_derived_attribute(birds5, imagenet_mobilenet, tmp_path):
    """Real photos, real ImageNet weights: species + passerine (a third of the attribute cells left empty)."""
    import shutil

    rows = []
    for split, folder, take in (("train", "train", 40), ("val", "valid", 5), ("test", "test", 5)):
        for species in sorted(PASSERINE):
            files = sorted((birds5 / folder / species).iterdir())[:take]
            for i, f in enumerate(files):
                copy = tmp_path / "img" / folder / species / f.name     # CSV paths must lie under the CSV's folder
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, copy)
                attribute = "" if (split == "train" and i % 3 == 0) else PASSERINE[species]
                rows.append([copy.relative_to(tmp_path).as_posix(), species, attribute, split])
    data = tmp_path / "birds.csv"
    with open(data, "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "species", "passerine", "split"], *rows])
    cfg = RunConfig(data=str(data), strategy="multitask", label_columns=["species", "passerine"],
                    backbone="mobilenet_025", weights="imagenet", image_size=224, epochs=15, batch_size=32,
                    head={"units": 128, "dropout": 0.2, "enabled": True}, early_stopping=0)
    store, run_id, state, run_dir = run(tmp_path / "ws", cfg)
    assert state == RunState.DONE, store.get(run_id).error
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    print("birds5 multitask:", evaluation["task_accuracy"])
    assert evaluation["task_accuracy"]["species"] >= 0.8
    assert evaluation["task_accuracy"]["passerine"] >= 0.8


def test_predictor_and_evaluate_use_the_main_task_of_a_multitask_run(two_task_run):
    """The generic Predictor / evaluate_run narrow a multi-task model to its main task (labels.json)."""
    from tlcore.evaluate import evaluate_run
    from tlcore.predict import Predictor, load_labels

    run_dir = two_task_run[3]
    predictor = Predictor.from_run(run_dir)
    assert predictor.classes == load_labels(run_dir)
    image = next(p for p in sorted(run_dir.parent.parent.parent.rglob("*")) if p.suffix in (".png", ".jpg"))
    top = predictor.predict([str(image)], top_k=2)[0]
    assert len(top) == 2 and top[0][0] in predictor.classes
    assert "accuracy" in evaluate_run(run_dir)


# -- issue 9: Evaluate again, Predict, predictions.csv, the chart and the CLI show every task ---------------------
def test_evaluate_again_keeps_every_task_in_the_same_shape(two_task_run):
    """Major 2: "Evaluate again" (evaluate_run) once narrowed a multi-task run to its main task (no 'tasks');
    now it writes what training wrote: the main task's keys at the top level and every task under 'tasks'."""
    from tlcore.evaluate import evaluate_run

    run_dir = two_task_run[3]
    trained = json.loads((run_dir / "evaluation.json").read_text())
    again = evaluate_run(run_dir)
    assert json.loads((run_dir / "evaluation.json").read_text()) == again
    assert set(trained) - {"data"} <= set(again) and set(again["tasks"]) == {"colour", "bright"}
    for task in ("colour", "bright"):
        report = again["tasks"][task]
        assert report["accuracy"] == pytest.approx(trained["tasks"][task]["accuracy"])
        assert {"macro_f1", "per_class", "confusion_matrix", "accuracy_ci95", "misclassified"} <= set(report)
        assert "top_k_accuracy" not in report   # top-k with k >= classes (2 or 3) is meaningless
    assert again["accuracy"] == again["tasks"]["colour"]["accuracy"]
    assert "uncertainty_note" in again["tasks"]["bright"]   # a handful of test images: the interval is spelled out


def test_predictor_table_and_cli_answer_every_task(two_task_run, tmp_path, capsys):
    from PIL import Image

    from tlcore import cli
    from tlcore.predict import Predictor, predict_table, prediction_records, table_columns

    run_dir = two_task_run[3]
    path = tmp_path / "red_dark.png"
    Image.fromarray(np.full((40, 40, 3), np.array(COLOURS["red"]) * 0.4, dtype="uint8")).save(path)
    predictor = Predictor.from_run(run_dir)
    assert predictor.multitask and list(predictor.tasks) == ["colour", "bright"]
    [answer] = predictor.predict_tasks([path], top_k=2)
    assert answer["colour"][0][0] == "red" and answer["bright"][0][0] == "no"
    [row] = predict_table(predictor, [("red_dark.png", path.read_bytes())], top_k=2)
    assert (row["prediction"], row["task:bright"]) == ("red", "no") and 0.5 < row["task:bright:confidence"] <= 1
    names = table_columns(predictor, list(row))
    assert names["prediction"] == "colour prediction" and names["task:bright"] == "bright prediction"
    assert names["task:bright:confidence"] == "bright confidence" and len(set(names.values())) == len(names)
    [record] = prediction_records(predictor, [str(path)], top_k=1)
    assert record["top"] == record["tasks"]["colour"] and record["tasks"]["bright"][0]["class"] == "no"
    assert cli.main(["predict", str(run_dir), str(path), "--json"]) == 0
    [printed] = json.loads(capsys.readouterr().out)
    assert set(printed["tasks"]) == {"colour", "bright"}
    assert cli.main(["evaluate", str(run_dir), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["tasks"]) == {"colour", "bright"}


def test_train_chart_shows_each_tasks_accuracy(two_task_run):
    """Major 3: the accuracy panel was empty (the epochs log '<task>_accuracy', never 'accuracy')."""
    from tlcore.progress import summarize
    from views._charts import task_accuracies, training_curves

    store, run_id = two_task_run[:2]
    rows = summarize(store.read_events(run_id)).epochs
    assert set(task_accuracies(rows)) == {"colour", "bright"}
    figure = training_curves(rows, None, 25)
    accuracy = {trace.name: trace for trace in figure.data if trace.yaxis == "y2"}
    assert set(accuracy) == {"training colour accuracy", "validation colour accuracy",
                             "training bright accuracy", "validation bright accuracy"}
    assert all(len(trace.y) == len(rows) and None not in trace.y for trace in accuracy.values())
