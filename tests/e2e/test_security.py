"""A class named like an HTML tag (uploaded in a zip) is shown as literal text in a real browser: no element is
injected, no script runs."""
from __future__ import annotations

import re

from _e2e import (XSS, assert_no_error_shown, class_zip, heading, images_loaded, main, settle, shot, sidebar,
                  upload)


def test_html_class_name_is_shown_as_text(page, server, tmp_path):
    archive = class_zip(tmp_path / "colours.zip", {XSS: (220, 30, 30), "green": (30, 200, 40)}, per_class=8)
    page.goto(f"{server.url}/data")
    heading(page, "1 · Data").wait_for()
    settle(page)
    # A new visitor has no dataset, so the import panel is open on the zip tab.
    upload(page, "zip_upload", archive)
    main(page).get_by_text(re.compile("^Imported “colours”: 16 images in 2 classes")).wait_for(timeout=120_000)
    main(page).locator(".st-key-class_counts_chart .main-svg").first.wait_for()
    images_loaded(page, '[data-testid="stMain"] [data-testid="stImage"] img')
    settle(page)

    # The class name appears literally: above its thumbnails, in the chart's axis, and in the summary.
    label = main(page).get_by_text(f"{XSS}  (8 images)", exact=True)
    label.wait_for()
    assert label.inner_text() == f"{XSS}  (8 images)"
    axis = page.locator(".st-key-class_counts_chart .main-svg text", has_text="onerror")
    assert XSS in axis.all_text_contents(), axis.all_text_contents()
    assert "colours" in sidebar(page).inner_text()

    # Nothing was injected and nothing ran.
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("[onerror]").count() == 0
    assert page.evaluate("() => document.documentElement.outerHTML.includes('onerror=alert')") is True  # as text
    assert page.dialogs == [], page.dialogs
    assert page.page_errors == [], page.page_errors
    assert_no_error_shown(page)
    shot(page, "security_01_html_class_name")
