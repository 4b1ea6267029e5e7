"""Real transfer learning through the browser: birds5 (5 species, own train/valid/test folders) zipped and uploaded,
MobileNet α=0.25 with its real ImageNet weights, feature extraction, a few epochs: the Evaluate page shows ≥ 90%."""
from __future__ import annotations

import re

from _e2e import (choose_radio, assert_no_error_shown, button, data_page_drawn, heading, main, metric,
                  open_model_page_with_defaults, open_step, percent, radio_value, set_number, settle, shot, sidebar,
                  upload, zip_folder)

SPECIES = ("ASIAN GREEN BEE EATER", "D-ARNAUDS BARBET", "HOUSE FINCH", "OVENBIRD", "RUFOUS TREPE")


def test_birds5_upload_train_evaluate(page, server, tmp_path, birds5, imagenet_mobilenet):
    archive = zip_folder(birds5, tmp_path / "birds5.zip")
    page.goto(f"{server.url}/data")
    heading(page, "1 · Data").wait_for()
    settle(page)
    upload(page, "zip_upload", archive)
    main(page).get_by_text(re.compile(r"^Imported “birds5”: 1247 images in 5 classes")).wait_for(timeout=240_000)
    main(page).locator(".st-key-class_counts_chart .main-svg").first.wait_for()
    for species in SPECIES:                      # names with spaces and capitals are kept exactly
        main(page).get_by_text(re.compile(rf"^{re.escape(species)}\s+\(\d+ images\)$")).wait_for()
    data_page_drawn(page, "birds5_01_data")

    open_model_page_with_defaults(page)
    assert "not on this server yet" not in main(page).inner_text()      # the real weights are cached
    settle(page)
    shot(page, "birds5_02_model")

    open_step(page, "Next: train", "3 · Train")
    assert radio_value(page, "strategy") == "Recommended (automatic)"      # the default: the search
    assert "Weights: ImageNet" in main(page).inner_text()
    choose_radio(page, "strategy", "Feature extraction")   # not the default search
    set_number(page, "epochs", 5)
    button(page, "start_button").click()
    main(page).get_by_test_id("stAlertContentSuccess").filter(has_text="Training finished").wait_for(timeout=420_000)
    sidebar(page).get_by_text(re.compile(r"done · accuracy \d+%")).wait_for()
    settle(page)
    assert_no_error_shown(page)
    shot(page, "birds5_03_train_done")

    open_step(page, "Next: evaluate the model", "4 · Evaluate")
    page.locator(".st-key-confusion_chart .main-svg").first.wait_for(timeout=120_000)
    settle(page)
    accuracy = percent(metric(page, "Accuracy"))
    assert int(metric(page, "Test images")) == 25           # birds5's own test/ folder: 5 per species
    shot(page, "birds5_04_evaluate")
    assert accuracy >= 0.9, f"accuracy {accuracy:.0%} on birds5's test images"
