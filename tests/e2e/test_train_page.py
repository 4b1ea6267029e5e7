"""The Train page in a real browser (issue 9): a run's stages while it trains, the plain "no better than guessing"
warning (not a green "Training finished") for a model at chance, and a queued comparison followed live: its pending
cells read "queued" / "training", and the page moves on to the next run by itself."""
from __future__ import annotations

import re

from _e2e import (assert_no_error_shown, button, choose_radio, heading, main, selectbox_value, set_number, settle,
                  shot, sidebar)


def _slider_to_first(page, key: str) -> None:
    """Move a select slider to its first (smallest) option with the keyboard, as a user can."""
    thumb = page.locator(f'.st-key-{key} input[type="range"]')
    thumb.focus()
    thumb.press("Home")
    page.wait_for_function("(sel) => document.querySelector(sel).value === '0'",
                           arg=f'.st-key-{key} input[type="range"]')
    settle(page)


def _compare_table(page):
    """The side-by-side st.dataframe (its accessible table mirrors the canvas cells)."""
    return page.get_by_test_id("stDataFrame").filter(has_text="Trainable parameters")


def test_chance_warning_and_a_followed_comparison(page, server):
    page.goto(server.url)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)

    # Random weights (no pretraining) and small images: quick on a shared 2-core machine, and no better than chance.
    sidebar(page).get_by_role("link", name="2 · Model").click()
    heading(page, "2 · Model").wait_for(timeout=120_000)
    settle(page)
    page.locator('.st-key-image_size input[role="combobox"]').click()
    page.get_by_role("option", name="96×96").click()
    page.wait_for_function("() => document.querySelector('.st-key-image_size input').value === '96×96'")
    settle(page)
    choose_radio(page, "weights_source", "Random initialisation (no pretraining)")
    sidebar(page).get_by_role("link", name="3 · Train").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)
    main(page).get_by_text(re.compile(r"Weights: random \(no pretraining\)")).wait_for()

    # Feature extraction on random features, one epoch at the smallest learning rate: the head learns nothing.
    choose_radio(page, "strategy", "Feature extraction")   # not the default search
    set_number(page, "epochs", 1)
    _slider_to_first(page, "learning_rate")
    button(page, "start_button").click()
    stages = main(page).get_by_text(re.compile("✓ Reading the images"))
    stages.wait_for(timeout=300_000)                   # the run's stages, from its events, while it trains
    shot(page, "train_01_stages")
    warning = main(page).get_by_test_id("stAlertContentWarning").filter(has_text="no better than guessing")
    try:
        warning.wait_for(timeout=900_000)      # a shared 2-core machine can be slow
    finally:
        shot(page, "train_02_chance_warning")
    settle(page)
    text = warning.inner_text()
    assert "random weights" in text and "ImageNet" in text and "Fix:" in text
    assert main(page).get_by_test_id("stAlertContentSuccess").filter(has_text="Training finished").count() == 0
    assert_no_error_shown(page)

    # A comparison (feature extraction, then the scratch baseline): while the first trains, the second's cells
    # say "queued" and the first's "training".
    button(page, "compare_button").click()
    main(page).get_by_text("2 runs queued").wait_for(timeout=60_000)
    settle(page)
    assert "1/2" in selectbox_value(page, "run_select")
    other = page.context.new_page()                    # a second tab on the same workspace: Evaluate
    other.goto(page.url)
    heading(other, "3 · Train").wait_for(timeout=120_000)
    sidebar(other).get_by_role("link", name="4 · Evaluate").click()
    heading(other, "4 · Evaluate").wait_for(timeout=120_000)
    try:
        _compare_table(other).wait_for(timeout=300_000)   # its cells are drawn on a canvas: the AppTest
        settle(other)                                     # test_page_train_feedback reads them; look at the shot
    finally:
        shot(other, "train_03_compare_pending")
    other.close()

    # The first tab follows the comparison by itself when the first run ends; Stop ends the slow baseline.
    main(page).get_by_text("now following the next run of the comparison").wait_for(timeout=900_000)
    settle(page)
    assert "2/2" in selectbox_value(page, "run_select")
    shot(page, "train_04_followed")
    button(page, "stop_button").click()
    main(page).get_by_text(re.compile(r"2/2 .*stopped")).wait_for(timeout=600_000)
    settle(page)
    assert "epoch 2 of" not in main(page).inner_text()
    assert_no_error_shown(page)
    shot(page, "train_05_stopped")
