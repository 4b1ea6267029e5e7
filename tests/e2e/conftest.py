"""Browser tests: a real Streamlit server on a free loopback port, driven by Playwright in Debian's chromium.

The helpers live in _e2e.py (import them with ``from _e2e import ...``); ``Server`` and ``shot`` are re-exported
here for older imports.
"""
from __future__ import annotations

import pytest

from _e2e import Server, launch_browser, new_page, shot  # noqa: F401


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: each module gets its own Playwright, so tests/load can start one after these modules."""
    pw, b = launch_browser()
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("e2e-ws")).start()
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, server):
    pg = new_page(browser)
    yield pg
    pg.context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the server's last log lines to the report (the traceback alone rarely says why)."""
    outcome = yield
    report = outcome.get_result()
    srv = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if report.failed and srv is not None:
        report.sections.append(("streamlit server log (tail)", srv.log_tail()))
