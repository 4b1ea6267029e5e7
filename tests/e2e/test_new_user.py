"""A first-time visitor's whole path in a real browser: Home → sample → Data → Model → Train → Evaluate → Predict →
Export, ending with the downloaded .keras file loaded safely and run in this test."""
from __future__ import annotations

import re

import numpy as np
from _e2e import (assert_no_error_shown, button, choose_radio, circle_png, data_page_drawn, heading, images_loaded,
                  main, metric, open_model_page_with_defaults, open_step, percent, query, set_number, settle, shot,
                  sidebar, upload)
from PIL import Image

SHAPES = ("circle", "square", "triangle")


def test_new_user_trains_predicts_and_exports(page, server, tmp_path):
    # Home: a new visitor gets a private token in the address at once.
    page.goto(server.url)
    heading(page, "Transfer Learning Studio").wait_for()
    button(page, "sample_button").wait_for()
    settle(page)
    token = query(page).get("u")
    assert token, page.url
    shot(page, "new_user_01_home")

    # "Try it with a sample" fills every step and lands on the Train page.
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)
    assert query(page).get("u") == token

    # The Data page shows the three generated classes.
    sidebar(page).get_by_role("link", name="1 · Data").click()
    heading(page, "1 · Data").wait_for()
    for shape in SHAPES:
        main(page).get_by_text(re.compile(rf"^{shape}\s+\(40 images\)$")).wait_for()
    main(page).locator(".st-key-class_counts_chart .main-svg").first.wait_for()
    main(page).get_by_text("Synthetic shapes (generated on this machine): 120 images in 3 classes").wait_for()
    data_page_drawn(page, "new_user_02_data")

    # Model: MobileNet α=0.25 is the default backbone; freeze the whole backbone and watch the counts follow.
    open_model_page_with_defaults(page)
    choose_radio(page, "freeze_mode", "Freeze the whole backbone")
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMetric"]')].some(
        m => m.innerText.includes('Trainable in the backbone') && /\\n0$/.test(m.innerText.trim()))""")
    assert metric(page, "Trainable in the backbone") == "0"
    assert metric(page, "Frozen in the backbone") != "0"
    assert_no_error_shown(page)
    shot(page, "new_user_03_model")

    # Train: 2 epochs, Start, watch it run, then the loss / accuracy curves.
    open_step(page, "Next: train", "3 · Train")
    choose_radio(page, "strategy", "Feature extraction")   # not the default search
    set_number(page, "epochs", 2)
    button(page, "start_button").click()
    running = page.get_by_test_id("stProgress").or_(page.get_by_test_id("stAlertContentSuccess"))
    running.first.wait_for(timeout=120_000)
    run_id = query(page).get("run")
    assert run_id, page.url
    shot(page, "new_user_04_train_running")
    done = main(page).get_by_test_id("stAlertContentSuccess").filter(has_text="Training finished")
    done.wait_for(timeout=300_000)
    # The run's end triggers a full rerun: wait for what only that rerun draws (the sidebar's final state).
    sidebar(page).get_by_text(re.compile(r"done · accuracy \d+%")).wait_for()
    page.locator(f".st-key-curves_{run_id} .main-svg").first.wait_for()
    settle(page)
    legend = page.locator(f".st-key-curves_{run_id}").inner_text()
    for name in ("training loss", "validation loss", "training accuracy", "validation accuracy"):
        assert name in legend, legend
    train_accuracy = percent(done.inner_text())
    assert query(page) == {"u": token, "run": run_id}
    assert run_id in sidebar(page).inner_text()
    assert_no_error_shown(page)
    shot(page, "new_user_05_train_done")

    # Evaluate: the accuracy on the test images, the same number the Train page gave.
    open_step(page, "Next: evaluate the model", "4 · Evaluate")
    page.locator(".st-key-confusion_chart .main-svg").first.wait_for(timeout=120_000)
    accuracy = percent(metric(page, "Accuracy"))
    assert 0.0 <= accuracy <= 1.0
    assert abs(accuracy - train_accuracy) < 0.001, (accuracy, train_accuracy)
    assert int(metric(page, "Test images")) == 18           # 15% of 40 per class, 3 classes
    settle(page)
    assert_no_error_shown(page)
    shot(page, "new_user_06_evaluate")

    # Predict: upload a new picture and get the top classes and a Grad-CAM overlay.
    open_step(page, "Next: try the model on new images", "5 · Predict")
    upload(page, "predict_upload", circle_png(tmp_path / "my circle.png"))
    page.locator(".st-key-topk_chart .main-svg").first.wait_for(timeout=120_000)
    answer = main(page).get_by_text(re.compile(r"^my circle\.png: (circle|square|triangle) \(\d+%\)$"))
    answer.wait_for()
    images_loaded(page, '[data-testid="stMain"] [data-testid="stImage"] img')
    settle(page)
    assert "Where the model looked" in main(page).inner_text() and "Your image" in main(page).inner_text()
    assert_no_error_shown(page)
    shot(page, "new_user_07_predict")

    # Export: build the .keras file, download it, load it safely and predict with it here.
    open_step(page, "Next: export the model", "6 · Export")
    button(page, "export_keras_button").click()
    button(page, "download_keras").wait_for(timeout=120_000)
    settle(page)
    shot(page, "new_user_08_export")
    with page.expect_download() as info:
        button(page, "download_keras").click()
    download = info.value
    assert download.suggested_filename.endswith(f"-{run_id[-6:]}-model.keras")   # the run's name and short id
    target = tmp_path / "model.keras"
    download.save_as(target)
    assert target.stat().st_size > 100_000

    from tlcore.tf_env import keras  # noqa: F401 - the project's TF set-up (quiet logs)

    model = keras.saving.load_model(target, safe_mode=True)
    image = np.asarray(Image.open(tmp_path / "my circle.png").convert("RGB"), dtype="float32")[None]
    probabilities = np.asarray(model.predict(image, verbose=0))
    assert probabilities.shape == (1, len(SHAPES))
    assert np.isclose(probabilities.sum(), 1.0, atol=1e-4) and np.all(probabilities >= 0)
    random = np.random.default_rng(0).uniform(0, 255, (2, 64, 80, 3)).astype("float32")   # any size, raw pixels
    assert np.asarray(model.predict(random, verbose=0)).shape == (2, len(SHAPES))
    assert page.dialogs == [] and page.page_errors == [], (page.dialogs, page.page_errors)
