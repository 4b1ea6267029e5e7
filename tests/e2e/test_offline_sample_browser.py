"""Offline, with an empty Keras cache: "Try it with a sample" trains on the shipped ImageNet MobileNet (not from
scratch), reaches at least 90% on the test images, and the Predict page answers."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from _e2e import (Server, assert_no_error_shown, button, heading, images_loaded, main, percent, query, settle, shot,
                  sidebar, upload)
from helpers import SHARED

# Downloads go to a closed port and fail at once: the machine is offline for this server, whatever the network.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def stranger(tmp_path: Path) -> Path:
    """A photo unlike the sample's shapes: a bird from ../shared when it is there, else a colourful random scene."""
    from PIL import Image

    birds = sorted((SHARED / "datasets" / "birds5" / "test").glob("*/*.jpg"))
    if birds:
        return birds[0]
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)
    path = tmp_path / "scene.jpg"
    Image.fromarray(small).resize((224, 224), Image.BICUBIC).save(path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose KERAS_HOME is an empty folder: the only ImageNet weights are the ones the studio ships."""
    keras_home = tmp_path_factory.mktemp("empty-keras-home")
    srv = Server(tmp_path_factory.mktemp("offline-ws"), env={"KERAS_HOME": str(keras_home), **OFFLINE}).start()
    srv.keras_home = keras_home
    yield srv
    srv.stop()


def test_sample_offline_uses_the_shipped_imagenet_weights(page, server, tmp_path):
    assert list(server.keras_home.iterdir()) == []
    page.goto(server.url)
    heading(page, "Transfer Learning Studio").wait_for()
    settle(page)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=180_000)
    settle(page)
    assert (server.keras_home / "models" / "mobilenet_2_5_224_tf_no_top.h5").is_file()
    text = main(page).inner_text()
    assert "ImageNet weights and feature extraction" in text and "missing or damaged" not in text, text[:2000]
    shot(page, "offline_sample_01_train_ready")

    button(page, "start_button").click()
    done = main(page).get_by_test_id("stAlertContentSuccess").filter(has_text="Training finished")
    failed = main(page).get_by_test_id("stAlertContentError")
    done.or_(failed).first.wait_for(timeout=600_000)     # a busy 2-core machine can take minutes
    assert done.count(), failed.all_inner_texts()
    sidebar(page).get_by_text(re.compile(r"done · accuracy \d+%")).wait_for()
    settle(page)
    accuracy = percent(done.inner_text())
    assert accuracy >= 0.9, done.inner_text()
    assert_no_error_shown(page)
    shot(page, "offline_sample_02_trained")

    sidebar(page).get_by_role("link", name="5 · Predict").click()
    heading(page, "5 · Predict").wait_for(timeout=120_000)
    settle(page)
    button(page, "predict_sample_button").click()
    answer = main(page).get_by_text(re.compile(r": (circle|square|triangle) \(\d+%\)$"))
    answer.first.wait_for(timeout=120_000)
    page.locator(".st-key-topk_chart .main-svg").first.wait_for(timeout=120_000)
    images_loaded(page, '[data-testid="stMain"] [data-testid="stImage"] img')
    settle(page)
    assert_no_error_shown(page)
    run_id = query(page).get("run")
    assert run_id
    shot(page, "offline_sample_03_predict")

    # A photo of nothing the model knows (a bird, for a model of shapes) is answered "not one of my classes".
    upload(page, "predict_upload", stranger(tmp_path))
    main(page).get_by_text("This does not look like any of your classes", exact=False).first.wait_for(timeout=120_000)
    settle(page)
    shot(page, "offline_sample_03b_not_my_classes")

    # "Not sure": this run was right on every validation image, so nothing of it is unsure; a stricter threshold
    # in its calibration.json (as a run with doubtful validation answers has) makes a shape "not sure".
    run_dir = server.workspace / "runs" / run_id
    info = json.loads((run_dir / "calibration.json").read_text())
    (run_dir / "calibration.json").write_text(json.dumps({**info, "unsure_below": 1.01}))
    os.utime(run_dir / "model.keras")                  # the page reloads the run's predictor
    page.reload()
    heading(page, "5 · Predict").wait_for(timeout=120_000)
    settle(page)
    button(page, "predict_sample_button").click()       # one of its own test images: near its classes
    main(page).get_by_text(re.compile(r"^Not sure: \d+% is below the confidence")).first.wait_for(timeout=120_000)
    settle(page)
    shot(page, "offline_sample_03c_not_sure")

    # Export: the downloads carry the run's name and short id; the model card is prose and tables.
    sidebar(page).get_by_role("link", name="6 · Export").click()
    heading(page, "6 · Export").wait_for(timeout=120_000)
    button(page, "export_keras_button").click()
    button(page, "download_keras").wait_for(timeout=120_000)
    settle(page)
    with page.expect_download() as info:
        button(page, "download_keras").click()
    name = info.value.suggested_filename
    assert name.startswith("Feature-extraction-MobileNet") and name.endswith(f"-{run_id[-6:]}-model.keras"), name
    with page.expect_download() as info:
        button(page, "download_model_card").click()
    assert info.value.suggested_filename.endswith(f"-{run_id[-6:]}-model_card.md")
    card = (tmp_path / "card.md")
    info.value.save_as(card)
    text = card.read_text(encoding="utf-8").split("## How to load")[0]
    assert "| Strategy | Feature extraction (`feature_extraction`) |" in text and "ImageNet pretrained" in text
    assert "{" not in text and "Fine-tuning" not in text, text
    assert_no_error_shown(page)
    shot(page, "offline_sample_04_export")
    assert page.page_errors == [], page.page_errors
