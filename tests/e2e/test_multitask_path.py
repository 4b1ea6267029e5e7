"""Issue 9, majors 2 and 3 and the few-shot / sample minors, in a real browser.

The runs are trained through tlcore straight into the server's workspace (a tiny backbone: seconds, not minutes),
owned by a workspace token the browser then opens with ``?u=``. Then:
- Evaluate after a multi-task run: no crash (it was ``KeyError: 'top_k_accuracy'``), one tab per label column
  with its accuracy, macro F1, per-class table and confusion matrix; "Evaluate again" keeps them.
- Predict: one answer per label column, a column per task in the table and in the downloaded CSV, whose name
  carries the run's name.
- Train: the accuracy chart has a line per task (it was empty).
- Few-shot: "Add this class" from one photo, after which the model answers with the new class; the Train chart
  is the prototypes' accuracy, not a one-point loss; "Try a sample image" predicts a test image.
"""
from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _e2e import assert_no_error_shown, button, heading, main, settle, shot, upload

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def _png(path: Path, rgb, seed: int = 0, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.array(rgb, dtype="float32") + rng.normal(0, 12, (size, size, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(path)
    return path


def _two_label_csv(root: Path) -> Path:
    """colour × bright images and a CSV with two label columns."""
    rows = []
    (root / "img").mkdir(parents=True)
    for colour, rgb in COLOURS.items():
        for bright, scale in (("yes", 1.0), ("no", 0.4)):
            for i in range(8):
                name = f"img/{colour}_{bright}_{i}.png"
                _png(root / name, np.array(rgb) * scale, seed=len(rows))
                rows.append([name, colour, bright])
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["path", "colour", "bright"], *rows])
    return root / "labels.csv"


@pytest.fixture(scope="module")
def runs(server, tmp_path_factory):
    """A multi-task run and a few-shot run in the server's workspace, owned by one browser token."""
    from strategy_helpers import config, new_owner_store, train_runs, write_images

    root = tmp_path_factory.mktemp("mt-e2e")
    token, owner, backbone, store = new_owner_store(server.workspace, root)
    made = train_runs(store, owner, {
        "multitask": config(_two_label_csv(root / "mt"), backbone, strategy="multitask", epochs=6,
                             learning_rate=1e-2, label_columns=["colour", "bright"], name="Colour and brightness"),
        "few_shot": config(write_images(root / "fs", {**COLOURS, "yellow": (230, 220, 30)}, 8), backbone,
                            strategy="few_shot", name="Few colours"),
    })
    return token, made, root


def _chart_texts(page, server, token: str, run_id: str, selector: str) -> str:
    """Open the run's Train page and return the text of ``selector`` elements in its curves chart."""
    _open(page, server, "train", token, run_id, "3 · Train")
    chart = page.locator(f".st-key-curves_{run_id}")
    chart.locator(".main-svg").first.wait_for(timeout=60_000)
    return " ".join(chart.locator(selector).evaluate_all("els => els.map(e => e.textContent)"))


def _open(page, server, path: str, token: str, run_id: str, title: str) -> None:
    page.goto(f"{server.url}/{path}?u={token}&run={run_id}")
    heading(page, title).wait_for(timeout=120_000)
    settle(page, 120_000)


def test_multitask_evaluate_predict_and_chart(page, server, runs, tmp_path):
    token, made, _ = runs
    run_id = made["multitask"]

    # Evaluate: one tab per label column, each with its own numbers, table and confusion matrix.
    _open(page, server, "evaluate", token, run_id, "4 · Evaluate")
    tabs = main(page).get_by_role("tab")
    tabs.filter(has_text="bright").wait_for(timeout=60_000)
    assert [t.strip() for t in tabs.all_inner_texts()][:2] == ["colour", "bright"]
    page.locator(".st-key-confusion_chart_0 .main-svg").first.wait_for(timeout=60_000)
    main(page).get_by_test_id("stDataFrame").first.wait_for()                        # the per-class table
    assert main(page).get_by_text(re.compile(r"true accuracy could be anywhere from \d+% to \d+%")).first.is_visible()
    assert main(page).get_by_text("Top-3 accuracy").count() == 0       # 3 classes: top-3 is meaningless
    assert_no_error_shown(page)
    shot(page, "multitask_01_evaluate_colour")
    tabs.filter(has_text="bright").click()
    page.locator(".st-key-confusion_chart_1 .main-svg").first.wait_for()
    main(page).get_by_text("Every label column at a glance").wait_for()
    shot(page, "multitask_02_evaluate_bright")
    button(page, "evaluate_button").click()                             # "Evaluate again" keeps every task
    settle(page, 120_000)
    main(page).get_by_role("tab").filter(has_text="bright").wait_for()
    page.locator(".st-key-confusion_chart_1").wait_for()
    assert_no_error_shown(page)

    # Predict: an answer per label column, a column per task in the table and in the CSV.
    _open(page, server, "predict", token, run_id, "5 · Predict")
    images = [_png(tmp_path / "dark_red.png", np.array(COLOURS["red"]) * 0.4, seed=1),
              _png(tmp_path / "bright_blue.png", COLOURS["blue"], seed=2)]
    upload(page, "predict_upload", images)
    main(page).get_by_text("One answer per label column").wait_for(timeout=120_000)
    main(page).get_by_test_id("stDataFrame").first.wait_for()
    settle(page)
    answers = main(page).get_by_test_id("stMetric")
    assert [answers.nth(i).get_by_test_id("stMetricLabel").inner_text().strip() for i in range(2)] == \
        ["colour", "bright"]
    with page.expect_download() as info:
        button(page, "predict_csv_download").click()
    download = info.value
    assert re.fullmatch(r"Colour-and-brightness-\w{6}-predictions\.csv", download.suggested_filename)
    with open(download.path(), newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [row["file"] for row in table] == ["dark_red.png", "bright_blue.png"]
    assert {"colour prediction", "bright prediction", "bright confidence", "1st guess probability"} <= set(table[0])
    assert not any("_" in column for column in table[0])                # no raw names (top1_probability)
    assert all(row["bright prediction"] in ("yes", "no") for row in table)
    assert_no_error_shown(page)
    shot(page, "multitask_03_predict")

    # Train: the accuracy panel has a line per task.
    legend = _chart_texts(page, server, token, run_id, ".legendtext")
    for task in ("colour", "bright"):
        assert f"training {task} accuracy" in legend and f"validation {task} accuracy" in legend
    assert page.locator(f".st-key-curves_{run_id} .scatterlayer .trace").count() >= 6          # loss ×2 + accuracy ×4
    shot(page, "multitask_04_train_chart")


def test_few_shot_add_a_class_and_try_a_sample(page, server, runs, tmp_path):
    token, made, _ = runs
    run_id = made["few_shot"]

    _open(page, server, "predict", token, run_id, "5 · Predict")
    button(page, "predict_sample_button").click()
    main(page).get_by_text(re.compile(r"A test image of .* that the model never saw")).wait_for(timeout=120_000)
    page.locator(".st-key-topk_chart .main-svg").first.wait_for(timeout=60_000)
    settle(page)
    assert_no_error_shown(page)
    shot(page, "fewshot_01_sample")

    cyan = (30, 220, 220)
    page.locator(".st-key-add_class_name input").fill("cyan")
    upload(page, "add_class_photos", _png(tmp_path / "cyan0.png", cyan, seed=3))
    main(page).get_by_text("cyan0.png").wait_for()
    button(page, "add_class_button").click()
    main(page).get_by_text(re.compile(r"The model now knows 5 classes, 'cyan' included")).wait_for(timeout=120_000)
    settle(page)
    main(page).get_by_text(re.compile(r"The model knows 5 classes now: .*cyan")).wait_for()
    upload(page, "predict_upload", _png(tmp_path / "new_cyan.png", cyan, seed=9))
    main(page).get_by_text(re.compile(r"new_cyan\.png: cyan \(\d+%\)")).wait_for(timeout=120_000)
    settle(page)
    assert_no_error_shown(page)
    shot(page, "fewshot_02_added_class")

    # Train: the prototypes' accuracy, not a one-point loss; Evaluate: the episode columns in words.
    text = _chart_texts(page, server, token, run_id, "text")
    assert "nearest prototype" in text and "Loss" not in text
    shot(page, "fewshot_04_train_chart")
    _open(page, server, "evaluate", token, run_id, "4 · Evaluate")
    main(page).get_by_text("Few-shot episodes").wait_for(timeout=60_000)
    shot(page, "fewshot_03_evaluate")
