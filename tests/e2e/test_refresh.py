"""A refresh during training reattaches to the same run (the run id lives in the address); a second tab on the same
address shows the same run; Stop from the second tab stops it, and both tabs say so."""
from __future__ import annotations

import re

from _e2e import (choose_radio, assert_no_error_shown, button, heading, main, query, selectbox_value, set_number,
                  settle, shot, sidebar)

from tlcore import workspace as ws
from tlcore.runs import RunState, RunStore

# Fine-tuning, so that every epoch after the first runs the whole backbone: 500 of them take tens of minutes on
# any machine, where 500 head epochs on cached features could end (~50 s) before a slow machine reached Stop.
HEAD_EPOCHS, FINE_TUNE_EPOCHS = 1, 500
EPOCHS = HEAD_EPOCHS + FINE_TUNE_EPOCHS    # what the progress bar counts to


def epoch_of(page) -> int:
    text = page.get_by_test_id("stProgress").inner_text()
    match = re.search(rf"epoch (\d+) of {EPOCHS}", text)
    return int(match.group(1)) if match else 0


def wait_for_epoch(page, at_least: int, timeout_ms: int = 180_000) -> None:
    page.wait_for_function(
        """([n, total]) => { const bar = document.querySelector('[data-testid="stProgress"]');
             const m = bar && bar.innerText.match(new RegExp('epoch (\\\\d+) of ' + total));
             return !!m && Number(m[1]) >= n; }""", arg=[at_least, EPOCHS], timeout=timeout_ms)


def assert_shows_run(page, run_id: str, state_word: str) -> None:
    assert query(page).get("run") == run_id, page.url
    assert f"Run {run_id}" in sidebar(page).inner_text()
    label = selectbox_value(page, "run_select")
    assert label.endswith(run_id[-6:]) and f" · {state_word}" in label, label


def test_refresh_and_second_tab_reattach_then_stop(page, server):
    page.goto(server.url)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)
    token = query(page)["u"]
    choose_radio(page, "strategy", "Fine-tuning")          # not the default search
    set_number(page, "epochs", HEAD_EPOCHS)
    set_number(page, "fine_tune_epochs", FINE_TUNE_EPOCHS)
    set_number(page, "early_stopping", 0)                       # nothing but Stop ends this run
    button(page, "start_button").click()
    page.get_by_test_id("stProgress").wait_for(timeout=120_000)
    run_id = query(page)["run"]
    wait_for_epoch(page, 2)                                    # past the head: fine-tuning the top blocks
    assert_shows_run(page, run_id, "training")
    shot(page, "refresh_01_training")

    # Refresh (same address): a new Streamlit session that finds the run again and keeps following it.
    before = epoch_of(page)
    page.reload()
    heading(page, "3 · Train").wait_for()
    page.get_by_test_id("stProgress").wait_for(timeout=60_000)
    settle(page)
    assert query(page) == {"u": token, "run": run_id}
    assert_shows_run(page, run_id, "training")
    assert button(page, "start_button").is_disabled()           # the refresh did not offer to start it again
    wait_for_epoch(page, before + 1)                           # progress keeps coming in after the refresh
    page.locator(f".st-key-curves_{run_id} .main-svg").first.wait_for()
    assert_no_error_shown(page)
    shot(page, "refresh_02_after_reload")

    # A second tab on the same address shows the same run, live.
    second = page.context.new_page()
    second.set_default_timeout(60_000)
    second.goto(page.url)
    heading(second, "3 · Train").wait_for()
    second.get_by_test_id("stProgress").wait_for(timeout=60_000)
    settle(second)
    assert_shows_run(second, run_id, "training")
    shot(second, "refresh_03_second_tab")

    # Stop from the second tab: the run stops (within a batch), and the first tab's live view notices by itself.
    button(second, "stop_button").click()
    for tab in (second, page):
        button(tab, "restart_button").wait_for(timeout=300_000)
        main(tab).get_by_text(re.compile(r"stop_circle stopped")).first.wait_for()
        main(tab).get_by_text("The model trained so far was kept").wait_for()   # fine-tuned: not thrown away
        sidebar(tab).get_by_text(re.compile(r"stopped")).wait_for()
        settle(tab)
        assert_shows_run(tab, run_id, "stopped")
        assert_no_error_shown(tab)
        assert tab.get_by_test_id("stProgress").count() == 0
    shot(second, "refresh_04_stopped_second_tab")
    shot(page, "refresh_05_stopped_first_tab")

    store = RunStore(server.workspace)
    record = store.get(run_id)
    assert record.state == RunState.STOPPED, record
    assert HEAD_EPOCHS < record.metrics["epochs"] < EPOCHS and record.metrics.get("accuracy") is not None, record
    # Exactly one run for this visitor: neither the refresh nor the second tab started another.
    assert [r.id for r in store.list(owner=ws.owner_id(token=token))] == [run_id]
