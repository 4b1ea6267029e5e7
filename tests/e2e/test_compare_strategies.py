"""The strategy picker and the one-click comparison in a real browser: each strategy's own inputs appear, the
comparison queues feature extraction beside the scratch baseline, and Evaluate sets them side by side."""
from __future__ import annotations

import re

from _e2e import (assert_no_error_shown, button, choose_radio, heading, main, multiselect_values,
                  open_step, selectbox_value, set_number, settle, shot)


def test_strategy_inputs_and_one_click_comparison(page, server):
    page.goto(server.url)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)

    # Each strategy shows the inputs only it needs.
    choose_radio(page, "strategy", "Domain adaptation")
    page.locator(".st-key-target_dataset").wait_for()
    page.locator(".st-key-target_upload").wait_for()
    assert button(page, "start_button").is_disabled()           # no target images yet
    shot(page, "compare_01_dann_inputs")
    choose_radio(page, "strategy", "Multi-task learning")
    main(page).get_by_text(re.compile("Multi-task learning needs a CSV with extra label columns")).wait_for()
    choose_radio(page, "strategy", "Few-shot (prototypes)")
    page.locator(".st-key-fewshot_projection").wait_for()
    choose_radio(page, "strategy", "Feature extraction")
    assert_no_error_shown(page)

    # One click queues the chosen strategy beside the scratch baseline, on the same split and seed.
    set_number(page, "epochs", 2)
    assert multiselect_values(page, "compare_strategies") == ["Feature extraction", "Training from scratch"]
    queue = button(page, "compare_button")
    assert queue.inner_text().strip().endswith("Queue 2 runs")
    queue.click()
    main(page).get_by_text("2 runs queued").wait_for(timeout=60_000)
    settle(page)
    shot(page, "compare_02_queued")
    # When the first run ends, the page follows the baseline, which trains next, by itself.
    main(page).get_by_text("now following the next run of the comparison").wait_for(timeout=300_000)
    main(page).get_by_text(re.compile(r"2/2 · Training from scratch .*done")).wait_for(timeout=400_000)
    main(page).get_by_test_id("stAlert").filter(        # scratch on 120 images may well end at chance
        has_text=re.compile("Training finished|no better than guessing")).first.wait_for()
    settle(page)
    assert "2/2" in selectbox_value(page, "run_select")
    assert_no_error_shown(page)

    # Evaluate: the comparison side by side, with F1 per class and the curves overlaid.
    open_step(page, "Next: evaluate the model", "4 · Evaluate")
    page.locator(".st-key-compare_chart .main-svg").first.wait_for(timeout=120_000)
    main(page).get_by_text("F1 of each class").wait_for()
    assert re.fullmatch(r"Comparison \w{4} \(2 runs, 2 done\)", selectbox_value(page, "compare_group"))
    settle(page)
    page.locator(".st-key-compare_chart").scroll_into_view_if_needed()
    assert_no_error_shown(page)
    shot(page, "compare_03_side_by_side")
