""""Check my data" in a real browser (issue 12): the check runs in the background with progress, the galleries
show a wrongly filed image with its suggested class and a copy that leaks between splits, the fixes make v2, and a
second check on v2 finds them gone (v1 is unchanged), a run trains on the cleaned version, and the Evaluate page
sets it beside the run on v1 with the same settings ("What cleaning bought")."""
from __future__ import annotations

import re
import zipfile

from _e2e import (assert_no_error_shown, button, choose_radio, go_to, heading, main, open_panel, query, selectbox_value,
                  set_number, settle, shot, sidebar, start_long_run, upload)
from helpers import png_bytes

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def messy_zip(path):
    """Three colour classes of 10; a red image filed under 'blue' (a byte-identical copy of red/3.png)."""
    with zipfile.ZipFile(path, "w") as archive:
        for c, (name, rgb) in enumerate(COLOURS.items()):
            for i in range(10):
                archive.writestr(f"{name}/{i}.png", png_bytes(rgb, seed=c * 100 + i))
        archive.writestr("blue/wrong.png", png_bytes(COLOURS["red"], seed=3))
    return path


def show_check(page) -> None:
    """Scroll the check panel to the top of the window, so a screenshot shows its galleries."""
    main(page).get_by_role("heading", name="Check my data").evaluate("e => e.scrollIntoView({block: 'start'})")


def tab(page, title: str):
    return main(page).get_by_role("tab", name=re.compile(f"^{re.escape(title)}"))


def train_one_epoch(page, dataset_caption: str) -> None:
    """Train a one-epoch feature extraction from the Train page and wait for it to finish."""
    go_to(page, "3 · Train")
    main(page).get_by_text(re.compile(rf"^Dataset: {re.escape(dataset_caption)}")).wait_for()
    choose_radio(page, "strategy", "Feature extraction")
    set_number(page, "epochs", 1)
    before = query(page).get("run")
    button(page, "start_button").click()
    page.wait_for_function("b => new URLSearchParams(location.search).get('run') !== b", arg=before)
    sidebar(page).get_by_text(f"Run {query(page)['run']}", exact=False).wait_for()   # the new run, not the last
    sidebar(page).get_by_text(re.compile(r"\bdone( · accuracy \d+%)?$")).wait_for(timeout=420_000)
    settle(page)


def test_check_show_galleries_fix_as_v2_and_check_again(page, server, tmp_path):
    page.goto(server.url)
    sidebar(page).get_by_role("link", name="1 · Data").wait_for()
    sidebar(page).get_by_role("link", name="1 · Data").click()
    heading(page, "1 · Data").wait_for()
    settle(page)
    open_panel(page, "Import images")
    upload(page, "zip_upload", messy_zip(tmp_path / "messy.zip"))
    main(page).get_by_text(re.compile("^Imported “messy”: 31 images in 3 classes")).wait_for(timeout=120_000)
    settle(page)
    train_one_epoch(page, "messy (31 images, 3 classes)")           # the score before cleaning
    sidebar(page).get_by_text("Trained on messy ·", exact=False).wait_for(timeout=60_000)   # once redrawn
    go_to(page, "1 · Data")

    # The check runs in the background; the page polls it and draws the galleries when it ends.
    button(page, "check_data_button").click()
    main(page).get_by_text(re.compile(r"^Checked 31 images: \d+ likely label errors")).wait_for(timeout=180_000)
    settle(page)
    assert_no_error_shown(page)
    labels = tab(page, "Likely wrong labels (")
    assert re.search(r"\((\d+)\)", labels.inner_text()).group(1) != "0"
    main(page).get_by_text("Labelled 'blue', looks like 'red'", exact=False).first.wait_for()
    assert main(page).locator('[data-testid="stImage"] img').count() >= 1          # thumbnails in the gallery
    show_check(page)
    shot(page, "data_check_01_label_gallery")
    tab(page, "Duplicates (").click()
    main(page).get_by_text("blue/wrong.png", exact=True).locator("visible=true").first.wait_for()
    show_check(page)
    shot(page, "data_check_02_duplicates")

    # Fix: move the wrongly filed image to 'red' (it is a copy of red/3.png too: the duplicate fix removes it).
    tab(page, "Likely wrong labels (").click()
    first = main(page).locator('.st-key-fix_label_0')
    first.wait_for()
    choose_radio(page, "fix_label_0", "Move to 'red'")
    main(page).get_by_text(re.compile(r"^Chosen: 0 to remove, 1 to move")).wait_for()
    button(page, "apply_fixes_button").click()
    main(page).get_by_text(re.compile(r"^Made messy v2 \(1 relabelled\)")).wait_for(timeout=60_000)
    settle(page)
    assert selectbox_value(page, "dataset_select").startswith("messy v2"), selectbox_value(page, "dataset_select")
    main(page).get_by_text(re.compile(r"v1: as imported")).wait_for()
    shot(page, "data_check_03_v2_made")

    # A second check, on v2: the moved image is no longer a label error.
    button(page, "check_data_button").click()
    done = main(page).get_by_text(re.compile(r"^Checked 31 images: "))
    done.wait_for(timeout=180_000)
    settle(page)
    assert_no_error_shown(page)
    assert main(page).get_by_text("Labelled 'blue', looks like 'red'", exact=False).count() == 0
    show_check(page)
    shot(page, "data_check_04_second_check")

    # Then remove the copy as v3, from the duplicates gallery of v2's check.
    tab(page, "Duplicates (").click()
    choose_radio(page, "fix_duplicates_0", "Remove the copy (wrong.png)")
    button(page, "apply_fixes_button").click()
    main(page).get_by_text(re.compile(r"^Made messy v3 \(1 image removed\)")).wait_for(timeout=60_000)
    settle(page)
    main(page).get_by_text(re.compile(r"^messy v3: 30 images in 3 classes")).wait_for()
    assert_no_error_shown(page)
    show_check(page)
    shot(page, "data_check_05_v3")

    # A run on the cleaned version: the Train page names it, and the finished run says what it trained on.
    train_one_epoch(page, "messy v3 (30 images, 3 classes)")
    sidebar(page).get_by_text("Trained on messy v3", exact=False).wait_for(timeout=60_000)   # once redrawn
    assert_no_error_shown(page)
    shot(page, "data_check_06_trained_on_v3")

    # The Evaluate page: the run on v3 beside the run on v1 with the same settings.
    go_to(page, "4 · Evaluate")
    cleaning = main(page).get_by_role("heading", name="What cleaning bought")
    cleaning.wait_for(timeout=60_000)
    table = main(page).get_by_test_id("stTable").filter(has_text="Change from the first version")
    table.evaluate("e => e.scrollIntoView({block: 'center'})")
    settle(page)
    shown = table.inner_text()
    for version in ("v1: as imported", "v3: 1 image removed"):
        assert version in shown, shown
    assert re.search(r"[+-]\d+\.\d points", shown), shown
    assert_no_error_shown(page)
    shot(page, "data_check_07_what_cleaning_bought")


def test_class_names_that_differ_by_case_are_merged_in_the_browser(page, server, tmp_path):
    """The "Class names" gallery offers the merge; the new version has one class where there were two."""
    path = tmp_path / "pets.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for c, (name, rgb) in enumerate({"Cat": (200, 30, 30), "cat": (190, 40, 30), "dog": (30, 30, 200)}.items()):
            for i in range(8):
                archive.writestr(f"{name}/{i}.png", png_bytes(rgb, seed=c * 100 + i))
    page.goto(server.url)
    go_to(page, "1 · Data")
    open_panel(page, "Import images")
    upload(page, "zip_upload", path)
    main(page).get_by_text(re.compile("^Imported “pets”: 24 images in 3 classes")).wait_for(timeout=120_000)
    settle(page)
    button(page, "check_data_button").click()
    main(page).get_by_text(re.compile(r"^Checked 24 images: ")).wait_for(timeout=180_000)
    settle(page)
    tab(page, "Class names (1)").click()
    main(page).get_by_text("they differ only by case", exact=False).first.wait_for()
    choose_radio(page, "fix_names_0", "Merge 'cat' into 'Cat'")
    main(page).get_by_text(re.compile(r"^Chosen: .*merge 'cat' into 'Cat'")).wait_for()
    show_check(page)
    shot(page, "data_check_08_merge_chosen")
    button(page, "apply_fixes_button").click()
    main(page).get_by_text(re.compile(r"^Made pets v2 \('cat' merged into 'Cat'\)")).wait_for(timeout=60_000)
    settle(page)
    main(page).get_by_text(re.compile(r"^pets v2: 24 images in 2 classes")).wait_for()
    assert_no_error_shown(page)
    shot(page, "data_check_09_merged_v2")


def test_the_check_waits_in_the_training_queue_behind_a_run_and_stops(page, server):
    """One job per person: a check started while one's own run trains waits in the queue, says so, and stops."""
    page.goto(server.url)
    start_long_run(page)
    button(page, "stop_button").wait_for(timeout=120_000)
    go_to(page, "1 · Data")
    button(page, "check_data_button").click()
    main(page).get_by_text(re.compile(r"^Waiting in the training queue \(number 1\)")).wait_for(timeout=60_000)
    show_check(page)
    shot(page, "data_check_10_waiting_in_the_queue")
    button(page, "stop_check_button").click()
    main(page).get_by_text("The check was stopped.", exact=False).wait_for(timeout=60_000)
    settle(page)
    assert_no_error_shown(page)
    shot(page, "data_check_11_check_stopped")
    go_to(page, "3 · Train")                           # and the run, so the server is free again
    button(page, "stop_button").click()
    main(page).get_by_text(re.compile(r"stopped")).first.wait_for(timeout=600_000)
