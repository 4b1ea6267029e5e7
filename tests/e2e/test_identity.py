"""Issue 9, major 5: the same browser opening the plain address comes back to its own workspace (cookie tls_u), a new
browser gets an empty one, and the sidebar offers the private link with the retention rule. Also: the sidebar
follows a run to its end on another page, a 400 px screen is not covered by the sidebar, and a dark system
preference renders the dark theme."""
from __future__ import annotations

import re

from _e2e import (choose_radio, VIEWPORT, assert_no_error_shown, button, heading, main, query, selectbox_value, set_number, settle,
                  shot, sidebar, watch_page)

SAMPLE = "Synthetic shapes"
LIGHT_BG, DARK_BG = "rgb(255, 255, 255)", "rgb(15, 23, 42)"      # .streamlit/config.toml [theme.light] / [theme.dark]
BACKGROUND_JS = "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"


def open_home(page, url: str) -> None:
    page.goto(url)
    heading(page, "Transfer Learning Studio").wait_for()
    sidebar_text(page, "Copy my private link")
    settle(page)


def sidebar_text(page, text: str):
    locator = sidebar(page).get_by_text(text, exact=False).first
    locator.wait_for()
    return locator


def context_page(browser, **options):
    context = browser.new_context(**{"viewport": VIEWPORT, **options})
    page = context.new_page()
    page.set_default_timeout(60_000)
    watch_page(page)
    return page


def test_the_plain_address_brings_this_browser_back_to_its_workspace(browser, server):
    page = context_page(browser)
    try:
        open_home(page, server.url)
        token = query(page)["u"]
        button(page, "sample_button").click()
        heading(page, "3 · Train").wait_for(timeout=120_000)
        sidebar_text(page, SAMPLE)
        settle(page)
        assert {c["name"]: c["value"] for c in page.context.cookies()}.get("tls_u") == token
        cookie = next(c for c in page.context.cookies() if c["name"] == "tls_u")
        assert cookie["sameSite"] == "Lax" and cookie["path"] == "/" and cookie["expires"] > 0

        # The same browser types the plain address: the same workspace, the sample listed, the link to copy.
        again = page.context.new_page()
        again.set_default_timeout(60_000)
        watch_page(again)
        open_home(again, server.url + "/")
        assert query(again)["u"] == token
        sidebar_text(again, SAMPLE)
        box = again.locator(".st-key-private_link_box")
        assert f"?u={token}" in box.get_by_test_id("stCode").inner_text()
        assert box.get_by_test_id("stCodeCopyButton").count() == 1 or box.locator("button").count() >= 1
        assert "unused for 14 days is deleted" in box.inner_text()
        again.get_by_role("link", name="1 · Data").first.click()
        heading(again, "1 · Data").wait_for()
        settle(again)
        assert SAMPLE in again.get_by_test_id("stMain").inner_text()
        assert_no_error_shown(again)
        shot(again, "identity_01_same_browser_plain_address")

        # Another browser (no cookies) on the plain address: a new, empty workspace.
        stranger = context_page(browser)
        try:
            open_home(stranger, server.url + "/")
            assert query(stranger)["u"] != token
            assert SAMPLE not in sidebar(stranger).inner_text()
            shot(stranger, "identity_02_new_browser")
        finally:
            stranger.context.close()
    finally:
        page.context.close()


def test_the_sidebar_follows_a_run_to_its_end_on_another_page(browser, server):
    page = context_page(browser)
    try:
        open_home(page, server.url)
        button(page, "sample_button").click()
        heading(page, "3 · Train").wait_for(timeout=120_000)
        settle(page)
        choose_radio(page, "strategy", "Feature extraction")   # not the default search
        set_number(page, "epochs", 2)
        button(page, "start_button").click()
        page.get_by_test_id("stProgress").or_(sidebar(page).get_by_text(re.compile("done"))).first.wait_for(
            timeout=120_000)
        run_id = query(page)["run"]
        sidebar(page).get_by_role("link", name="Home").click()            # leave the Train page's live view
        heading(page, "Transfer Learning Studio").wait_for()
        # Only the sidebar's own live view can bring the end of the run onto the Home page.
        sidebar(page).get_by_text(re.compile(r"done · accuracy \d+%")).wait_for(timeout=420_000)
        sidebar(page).get_by_role("link", name="Next: Evaluate").wait_for()
        settle(page)
        assert query(page)["run"] == run_id and heading(page, "Transfer Learning Studio").is_visible()
        shot(page, "identity_03_run_ended_seen_from_home")

        # Where runs are picked: the picker names the dataset; rename, then delete after a confirmation.
        sidebar(page).get_by_role("link", name="6 · Export").click()
        heading(page, "6 · Export").wait_for(timeout=120_000)
        settle(page)
        assert "on Synthetic shapes" in selectbox_value(page, "export_run")
        page.locator(".st-key-export_run_manage_panel summary").click()
        name = page.locator(f".st-key-export_run_manage_name_{run_id[-12:]} input")
        name.fill("shapes, first try")
        name.press("Enter")
        settle(page)
        button(page, "export_run_manage_rename").click()
        main(page).get_by_text("The run is now called 'shapes, first try'.").wait_for()
        settle(page)
        assert selectbox_value(page, "export_run").startswith("shapes, first try · on Synthetic shapes")
        button(page, "export_run_manage_delete").click()
        main(page).get_by_text("This cannot be undone.", exact=False).wait_for()
        settle(page)
        shot(page, "identity_04_delete_asks_first")
        button(page, "export_run_manage_delete_yes").click()
        main(page).get_by_text("and its model were deleted.", exact=False).wait_for()
        main(page).get_by_text("There is no trained model yet", exact=False).wait_for()
        settle(page)
        assert "run" not in query(page) and "Current run" not in sidebar(page).inner_text()
        assert_no_error_shown(page)
        shot(page, "identity_05_run_deleted")
    finally:
        page.context.close()


def test_a_narrow_screen_is_not_covered_by_the_sidebar(browser, server):
    page = context_page(browser, viewport={"width": 400, "height": 860}, is_mobile=True, has_touch=True)
    try:
        page.goto(server.url)
        heading(page, "Transfer Learning Studio").wait_for()
        settle(page)
        bar = page.get_by_test_id("stSidebar")
        assert bar.get_attribute("data-collapsed") == "true"
        box = bar.bounding_box()
        assert box is None or box["x"] + box["width"] <= 0 or not bar.is_visible(), box
        assert heading(page, "Transfer Learning Studio").is_visible()
        shot(page, "identity_06_narrow_400px")
    finally:
        page.context.close()


def test_a_dark_system_preference_renders_dark(browser, server):
    for scheme, background in (("dark", DARK_BG), ("light", LIGHT_BG)):
        page = context_page(browser, color_scheme=scheme)
        try:
            open_home(page, server.url)
            page.wait_for_function(f"() => ({BACKGROUND_JS})() === '{background}'")
            assert page.evaluate(BACKGROUND_JS) == background
            shot(page, f"identity_07_{scheme}")
        finally:
            page.context.close()
