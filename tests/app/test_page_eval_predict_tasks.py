"""Evaluate and Predict pages after a multi-task run and a few-shot run (issue 9: majors 2-3, metrics, sample,
few-shot add-class), driven by AppTest on runs trained through tlcore into this module's workspace."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _apptools import new_app, no_crash, png_bytes


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))


@pytest.fixture(scope="module")
def runs(module_workspace, tmp_path_factory):
    from strategy_helpers import config, new_owner_store, train_runs, write_images
    from test_strategy_multitask import write_two_task_csv

    root = tmp_path_factory.mktemp("tasks-app")
    token, owner, backbone, store = new_owner_store(module_workspace, root)
    made = train_runs(store, owner, {
        "multitask": config(write_two_task_csv(root / "mt"), backbone, strategy="multitask", epochs=4,
                             label_columns=["colour", "bright"], learning_rate=1e-2),
        "few_shot": config(write_images(root / "fs", {"red": (220, 30, 30), "green": (30, 200, 40),
                                                       "blue": (30, 40, 220)}, 8), backbone, strategy="few_shot"),
    })
    return token, made, store


def page(token: str, run_id: str, view: str):
    at = new_app({"u": token, "run": run_id}).run()
    at.switch_page(f"views/{view}.py").run(timeout=120)
    no_crash(at)
    return at


def test_evaluate_a_multitask_run_shows_every_task(runs):
    """Major 2 (KeyError 'top_k_accuracy' on the saved evaluation) and major 3 (only the main label)."""
    token, made, store = runs
    at = page(token, made["multitask"], "evaluate")
    assert [t.label for t in at.tabs][:2] == ["colour", "bright"]
    assert [m.label for m in at.metric].count("Accuracy") == 2 and "Top-3 accuracy" not in [m.label for m in at.metric]
    assert len(at.get("plotly_chart")) >= 2                                # a confusion matrix per task
    assert any("true accuracy could be anywhere from" in i.value for i in at.info)
    at.button(key="evaluate_button").click().run(timeout=120)             # "Evaluate again"
    no_crash(at)
    assert [t.label for t in at.tabs][:2] == ["colour", "bright"]
    saved = json.loads((store.run_dir(made["multitask"]) / "evaluation.json").read_text())
    assert set(saved["tasks"]) == {"colour", "bright"}


def test_an_old_evaluation_without_top_k_still_draws(runs):
    """The page reads what the saved evaluation has: no top-k, no interval (an evaluation from before issue 9)."""
    token, made, store = runs
    path = store.run_dir(made["few_shot"]) / "evaluation.json"
    saved = json.loads(path.read_text())
    old = {k: v for k, v in saved.items() if k not in ("top_k_accuracy", "top_k", "accuracy_ci95", "uncertainty_note")}
    path.write_text(json.dumps(old))
    try:
        at = page(token, made["few_shot"], "evaluate")
        assert "Accuracy" in [m.label for m in at.metric]
        columns = list(at.dataframe[1].value.columns)
        assert "classes per episode" in columns and "photos per class" in columns and "n_way" not in columns
    finally:
        path.write_text(json.dumps(saved))


def test_predict_answers_every_task_and_offers_a_sample(runs):
    token, made, _ = runs
    at = page(token, made["multitask"], "predict")
    at.button(key="predict_sample_button").click().run(timeout=120)
    no_crash(at)
    assert any("that the model never saw in training" in c.value for c in at.caption)
    assert [m.label for m in at.metric][:2] == ["colour", "bright"] and len(at.get("plotly_chart")) == 1
    assert [b.proto.label for b in at.get("download_button")] == ["Download the table (CSV)"]   # named in e2e
    at.file_uploader(key="predict_upload").set_value([("a.png", png_bytes((210, 40, 40)), "image/png"),
                                                      ("b.png", png_bytes((40, 60, 210)), "image/png")]).run(timeout=120)
    no_crash(at)
    columns = list(at.dataframe[0].value.columns)
    assert columns[:5] == ["file", "colour prediction", "colour confidence", "bright prediction", "bright confidence"]
    assert not any("_" in c for c in columns)


def test_few_shot_add_class_on_the_predict_page(runs):
    token, made, store = runs
    at = page(token, made["few_shot"], "predict")
    assert at.get("form") and at.text_input(key="add_class_name")
    at.text_input(key="add_class_name").input("yellow")
    at.file_uploader(key="add_class_photos").set_value([("y.png", png_bytes((230, 220, 30)), "image/png")])
    at.button(key="add_class_button").click().run(timeout=120)
    no_crash(at)
    assert json.loads((store.run_dir(made["few_shot"]) / "labels.json").read_text())[-1] == "yellow"
    assert any("now knows 4 classes" in i.value for i in at.info) or any("now knows 4 classes" in str(m.value)
                                                                        for m in at.markdown)
