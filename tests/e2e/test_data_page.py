"""The Data page in a real browser (issue 9): an import stays selected after the next click (major 1); an import's
error shows outside the panel, right under it, and the panel and its tab stay as the user left them (major 6); rename; delete
with a confirmation."""
from __future__ import annotations

import re
import zipfile

from _e2e import (assert_no_error_shown, button, heading, images_loaded, is_open, main, open_panel, panel,
                  selectbox_value, settle, shot,
                  sidebar, upload)
from helpers import png_bytes

LONG = "ASIAN GREEN BEE EATER photo 0001"


def garden_zip(path):
    """Two classes; one file name longer than a thumbnail is wide."""
    with zipfile.ZipFile(path, "w") as archive:
        for c, (name, rgb) in enumerate((("ASIAN GREEN BEE EATER", (40, 160, 60)), ("roses", (200, 40, 60)))):
            for i in range(8):
                file = f"{LONG}.png" if (c, i) == (0, 0) else f"{i}.png"
                archive.writestr(f"{name}/{file}", png_bytes(rgb, seed=c * 100 + i))
    return path


def lonely_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(8):
            archive.writestr(f"only/{i}.png", png_bytes((90, 90, 200), seed=500 + i))
    return path


def chosen(page) -> str:
    return selectbox_value(page, "dataset_select")


def test_import_stays_chosen_errors_show_rename_and_delete(page, server, tmp_path):
    # Home: the sample is imported and chosen (this visitor's first dataset).
    page.goto(server.url)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)
    sidebar(page).get_by_role("link", name="1 · Data").click()
    heading(page, "1 · Data").wait_for()
    settle(page)
    assert chosen(page).startswith("Synthetic shapes"), chosen(page)

    # Import a zip through the panel: the new dataset is chosen, and the panel stays open.
    open_panel(page, "Import images")
    upload(page, "zip_upload", garden_zip(tmp_path / "garden.zip"))
    main(page).get_by_text(re.compile("^Imported “garden”: 16 images in 2 classes")).wait_for(timeout=120_000)
    main(page).get_by_text("garden: 16 images in 2 classes", exact=True).wait_for()
    settle(page)
    assert chosen(page).startswith("garden · 16 images"), chosen(page)
    assert is_open(page, "Import images")

    # Major 1: the first click on another control keeps the imported dataset (it used to switch back).
    button(page, "augment_preview_button").click()
    images_loaded(page, '[data-testid="stMain"] [data-testid="stHorizontalBlock"] [data-testid="stImage"] img')
    settle(page)
    assert chosen(page).startswith("garden · 16 images"), chosen(page)
    main(page).get_by_text("garden: 16 images in 2 classes", exact=True).wait_for()
    main(page).get_by_text(f"{LONG}.png", exact=True).wait_for()          # the full file name under its thumbnail
    assert page.evaluate("""() => {
        const s = document.querySelector('[data-testid="stMain"] [data-testid="stDataFrame"] .dvn-scroller');
        return !!s && s.scrollWidth <= s.clientWidth + 1; }"""), "the class-counts table is cut off"
    assert_no_error_shown(page)
    shot(page, "data_page_01_imported")

    # Major 6: a one-class zip's error shows at once, outside the panel, which stays open on its tab.
    upload(page, "zip_upload", lonely_zip(tmp_path / "lonely.zip"))
    error = main(page).get_by_test_id("stAlertContentError").filter(has_text="At least 2 classes are needed")
    error.wait_for(timeout=120_000)
    settle(page)
    assert error.is_visible()
    assert panel(page, "Import images").get_by_test_id("stAlertContentError").count() == 0
    assert is_open(page, "Import images")
    assert chosen(page).startswith("garden · 16 images")
    shot(page, "data_page_02_import_error")
    tab = main(page).get_by_role("tab", name="Build classes by hand")
    tab.click()
    page.wait_for_function("""() => [...document.querySelectorAll('[role="tab"]')].some(
        t => t.innerText.includes('Build classes by hand') && t.getAttribute('aria-selected') === 'true')""")
    settle(page)
    button(page, "add_class").click()
    page.locator(".st-key-class_name_2 input").wait_for()
    settle(page)
    assert tab.get_attribute("aria-selected") == "true"
    assert is_open(page, "Import images") and error.is_visible()
    shot(page, "data_page_03_tab_kept")

    # Rename the imported dataset.
    open_panel(page, "Rename, share or delete this dataset")
    name = page.locator(".st-key-dataset_name input")
    name.fill("Garden colours")
    name.press("Enter")
    page.wait_for_function("""() => { const b = document.querySelector('.st-key-rename_button button');
        return b && !b.disabled; }""")
    settle(page)
    button(page, "rename_button").click()
    main(page).get_by_text("Renamed to “Garden colours”.").wait_for()
    settle(page)
    assert chosen(page).startswith("Garden colours · 16 images"), chosen(page)
    main(page).get_by_text("Garden colours: 16 images in 2 classes", exact=True).wait_for()

    # Delete asks first; Cancel keeps it; confirming deletes it and the sample is chosen again.
    open_panel(page, "Rename, share or delete this dataset")
    button(page, "delete_dataset").click()
    question = main(page).get_by_text(re.compile("^Delete “Garden colours” and its 16 images"))
    question.wait_for()
    settle(page)
    shot(page, "data_page_04_delete_asks")
    assert chosen(page).startswith("Garden colours")
    button(page, "delete_cancel").click()
    question.wait_for(state="detached")
    settle(page)
    assert chosen(page).startswith("Garden colours")
    button(page, "delete_dataset").click()
    question.wait_for()
    settle(page)
    button(page, "delete_confirm").click()
    main(page).get_by_text("Deleted “Garden colours”.").wait_for()
    settle(page)
    assert chosen(page).startswith("Synthetic shapes"), chosen(page)
    main(page).get_by_text(re.compile(r"^Synthetic shapes .*: 120 images in 3 classes$")).wait_for()
    assert_no_error_shown(page)
    shot(page, "data_page_05_deleted")
    assert page.dialogs == [] and page.page_errors == [], (page.dialogs, page.page_errors)
