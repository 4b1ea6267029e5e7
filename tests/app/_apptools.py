"""Helpers for the AppTest suite: tiny images and zips, and driving the app."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from helpers import png_bytes  # noqa: F401 - also imported from here by the AppTest modules

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
XSS = "<img src=x onerror=alert(1)>"


def class_zip(classes: dict[str, tuple[int, int, int]], per_class: int = 8,
              extra: dict[str, bytes] | None = None) -> bytes:
    """A zip with one folder of noisy solid-colour PNGs per class (plus ``extra`` files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, rgb in classes.items():
            for i in range(per_class):
                archive.writestr(f"{name}/{i}.png", png_bytes(rgb, seed=i + 100 * len(name)))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def new_app(query: dict | None = None, timeout: float = 60):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    if query:
        at.query_params.update(query)
    return at


def texts(at) -> list[str]:
    """Every piece of Markdown-rendered text on the page (markdown, captions, alerts)."""
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "header"):
        out += [str(e.value) for e in getattr(at, kind)]
    for part in (at.sidebar,):
        out += [str(e.value) for e in part.markdown]
    return out


def no_crash(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def assert_no_raw_html(values) -> None:
    """No Markdown-rendered text holds an unescaped '<' tag (escaped text reads '\\<img …')."""
    import re

    for value in values:
        assert not re.search(r"(?<!\\)<[a-zA-Z]", str(value)), value
