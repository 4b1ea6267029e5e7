"""Browser-test helpers: a real Streamlit server on a free loopback port, Debian's chromium through Playwright,
and waits that follow what the page shows (never sleeps).

Imported by tests/e2e/conftest.py, the e2e tests and tests/load (which puts this folder on sys.path).
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path

from helpers import png_bytes
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"
SCREENS = ARTIFACTS / "screens"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1400, "height": 2200}         # Streamlit scrolls inside its own container: use a tall page
XSS = "<img src=x onerror=alert(1)>"
UPLOAD_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'

# The page has finished a script run: the app says "notRunning", and no skeleton or stale element is left.
SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"], [data-stale="true"]');
}"""
RUNNING_JS = """() => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state') === 'running'"""
IMAGES_LOADED_JS = """(selector) => {
    const imgs = Array.from(document.querySelectorAll(selector));
    return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m streamlit run app.py`` on a free loopback port with a private workspace."""

    def __init__(self, workspace: Path, env: dict | None = None) -> None:
        self.workspace = Path(workspace)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TLS_WORKSPACE": str(workspace), "TLS_MAX_JOBS": "2", "PYTHONPATH": str(ROOT),
                    "TF_CPP_MIN_LOG_LEVEL": "2", "TLS_EXECUTOR": "process", **(env or {})}   # the real app's default
        self.proc: subprocess.Popen | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self.peak_rss_mb: float | None = None

    def start(self, timeout: float = 120) -> "Server":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(self.port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def watch() -> None:  # the server says when it listens; no sleeping. Keeps draining the pipe afterwards.
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if "view your Streamlit app" in line or "URL:" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=watch, daemon=True).start()
        assert ready.wait(timeout), "the Streamlit server did not start:\n" + self.log_tail()
        assert self.proc.poll() is None, "the Streamlit server exited:\n" + self.log_tail()
        with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=30) as resp:
            assert resp.read().decode() == "ok"
        return self

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(list(self.lines)[-n:])

    def rss_mb(self) -> dict:
        """The server's current and peak resident memory (VmRSS / VmHWM from /proc), in MB."""
        out = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
        except (OSError, AttributeError, ValueError):
            pass
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.peak_rss_mb = self.rss_mb().get("VmHWM")
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def launch_browser():
    """(playwright, browser), or raise pytest's skip when chromium is missing."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium), which is not installed here")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    return pw, pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def new_page(browser, timeout_ms: int = 60_000):
    """A fresh context (a new visitor: no cookies, no session) and its page; JS dialogs are recorded, not shown."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    watch_page(page)
    return page


def watch_page(page) -> None:
    page.dialogs = []                     # type: ignore[attr-defined]
    page.page_errors = []                 # type: ignore[attr-defined]

    def on_dialog(dialog) -> None:
        page.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda err: page.page_errors.append(str(err)))


# ------------------------------------------------------------------------------------------------ waiting
def settle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished its current script run and drawn every element.

    Call it after waiting for the content an action produces (the "running" state appears only ~0.4 s after a
    click, so before that the page still looks settled)."""
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms)


def images_loaded(page, selector: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(IMAGES_LOADED_JS, arg=selector, timeout=timeout_ms)


def main(page):
    return page.get_by_test_id("stMain")


def sidebar(page):
    return page.get_by_test_id("stSidebar")


def heading(page, text: str):
    return main(page).get_by_role("heading", name=text, exact=True)


def open_step(page, link_text: str, title: str, timeout_ms: int = 120_000) -> None:
    """Follow a page link (e.g. "Next: train") in the main area and wait for the new page's title."""
    main(page).get_by_role("link", name=link_text).click()
    heading(page, title).wait_for(timeout=timeout_ms)
    settle(page, timeout_ms)


def go_to(page, step: str) -> None:
    """Open a step from the sidebar (e.g. "1 · Data") and wait until it has drawn."""
    sidebar(page).get_by_role("link", name=step).click()
    heading(page, step).wait_for(timeout=120_000)
    settle(page)


def start_long_run(page) -> None:
    """From the Home page: the sample, then a fine-tuning run of 1 + 500 epochs with no early stop, started. Its
    epochs run through the whole backbone, so it cannot end before a slow machine reaches the test's next step."""
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=120_000)
    settle(page)
    choose_radio(page, "strategy", "Fine-tuning")
    set_number(page, "epochs", 1)
    set_number(page, "fine_tune_epochs", 500)
    set_number(page, "early_stopping", 0)
    button(page, "start_button").click()


def data_page_drawn(page, screenshot: str) -> None:
    """The Data page has drawn its thumbnails with no error shown; save its screenshot."""
    images_loaded(page, '[data-testid="stMain"] [data-testid="stImage"] img')
    settle(page)
    assert_no_error_shown(page)
    shot(page, screenshot)


def open_model_page_with_defaults(page) -> None:
    """Go on to the Model page and check the defaults: MobileNet α=0.25 with ImageNet weights; its chart drawn."""
    open_step(page, "Next: choose a model", "2 · Model")
    assert selectbox_value(page, "backbone_select").startswith("MobileNet α=0.25")
    assert radio_value(page, "weights_source") == "ImageNet (pretrained)"
    page.locator(".st-key-layer_chart .main-svg").first.wait_for(timeout=120_000)


def panel(page, label: str):
    """The expander whose summary shows ``label``."""
    return main(page).get_by_test_id("stExpander").filter(has=page.locator("summary", has_text=label))


def is_open(page, label: str) -> bool:
    return panel(page, label).locator("details").first.evaluate("d => d.open")


def open_panel(page, label: str) -> None:
    if not is_open(page, label):
        panel(page, label).locator("summary").first.click()
        page.wait_for_function("""(label) => [...document.querySelectorAll('[data-testid="stExpander"] details')]
            .some(d => d.open && d.querySelector('summary').innerText.includes(label))""", arg=label)
        settle(page)


def button(page, key: str):
    """The visible button of a widget with ``key`` (Streamlit also renders a hidden copy for measuring)."""
    return page.locator(f".st-key-{key}").get_by_role("button")


def query(page) -> dict[str, str]:
    from urllib.parse import parse_qs, urlparse

    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def set_number(page, key: str, value: int) -> None:
    # A rerun that has just begun (after a radio click, say) can briefly draw the new widget beside the old one.
    page.wait_for_function("(sel) => document.querySelectorAll(sel).length === 1", arg=f".st-key-{key} input")
    settle(page)
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_function(
        "([sel, v]) => { const e = document.querySelector(sel); return e && e.value === v; }",
        arg=[f".st-key-{key} input", str(value)])
    settle(page)
    # Leave the field, as a person does before the next click. Its blur asks for one more script run; a click that
    # itself blurs the field can lose its mouseup to that run's redraw (seen with Start after the epochs field).
    # The field with the focus: a rerun may draw the new widget beside the old one for a moment here too.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    try:
        page.wait_for_function(RUNNING_JS, timeout=2_000)
    except PlaywrightTimeoutError:
        pass                              # the blur changed nothing, so no run started
    settle(page)


def choose_radio(page, key: str, label: str) -> None:
    option = page.locator(f".st-key-{key}").get_by_text(label, exact=True)
    option.click()
    page.locator(f'.st-key-{key} [data-testid="stRadioOption"][data-selected="true"]').filter(
        has_text=label).wait_for()
    settle(page)


def radio_value(page, key: str) -> str:
    return page.locator(f'.st-key-{key} [data-testid="stRadioOption"][data-selected="true"]').inner_text().strip()


def selectbox_value(page, key: str) -> str:
    return page.locator(f'.st-key-{key} input[role="combobox"]').input_value()


def selectbox_options(page, key: str) -> list[str]:
    """Open a selectbox, read its options, and close it again."""
    page.locator(f'.st-key-{key} input[role="combobox"]').click()
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = [t.strip() for t in options.all_inner_texts()]
    page.keyboard.press("Escape")
    options.first.wait_for(state="detached")
    return texts


def multiselect_values(page, key: str) -> list[str]:
    """The chosen items of a multiselect, as shown in its tags."""
    tags = page.locator(f'.st-key-{key} [data-testid="stMultiSelectTagsContainer"] [data-tag]')
    return [tags.nth(i).get_attribute("aria-label") for i in range(tags.count())]


def upload(page, key: str, path: Path | list[Path]) -> None:
    page.locator(f".st-key-{key} {UPLOAD_INPUT}").set_input_files(path if isinstance(path, list) else str(path))


def metric(page, label: str) -> str:
    box = page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").get_by_text(label,
                                                                                                     exact=True))
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def percent(text: str) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    assert match, f"no percentage in {text!r}"
    return float(match.group(1)) / 100


def assert_no_error_shown(page) -> None:
    """No Python exception box and no error alert on the page."""
    exceptions = page.get_by_test_id("stException")
    errors = page.get_by_test_id("stAlertContentError")
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    assert errors.count() == 0, errors.all_inner_texts()


def shot(page, name: str) -> Path:
    """Save a full screenshot as a test artifact (artifacts/ is git-ignored)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# ------------------------------------------------------------------------------------------------ test data
def class_zip(path: Path, classes: dict[str, tuple[int, int, int]], per_class: int = 8, seed: int = 0) -> Path:
    """A zip with one folder of noisy solid-colour PNGs per class."""
    with zipfile.ZipFile(path, "w") as archive:
        for c, (name, rgb) in enumerate(classes.items()):
            for i in range(per_class):
                archive.writestr(f"{name}/{i}.png", png_bytes(rgb, seed=seed * 1000 + c * 100 + i))
    return path


def circle_png(path: Path) -> Path:
    """A new picture the sample model never saw: a blue circle on a light background."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (96, 96), (235, 235, 235))
    ImageDraw.Draw(img).ellipse([18, 18, 78, 78], fill=(40, 90, 200))
    img.save(path)
    return path


def try_sample(page, url: str) -> None:
    """Home → "Try it with a sample" → the Train page, settled."""
    page.goto(url)
    button(page, "sample_button").wait_for()
    settle(page)
    button(page, "sample_button").click()
    heading(page, "3 · Train").wait_for(timeout=180_000)
    settle(page)


def zip_folder(folder: Path, path: Path) -> Path:
    """Zip ``folder``'s contents (e.g. birds5's train/valid/test), paths relative to it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder).as_posix())
    return path
