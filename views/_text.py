"""Text and errors on the pages: escaping user text, showing a TLError's sentence, never a traceback."""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Any, Iterator

import streamlit as st

from tlcore.errors import TLError

log = logging.getLogger("tlstudio.ui")

UNEXPECTED = ("{what} did not work because of an unexpected problem on the server. Try again; if it happens "
              "again, tell the person who runs this server.")
_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&^=\"'])")


def esc(text: Any) -> str:
    """User text made safe for any Streamlit element that renders Markdown: every markup character is escaped,
    so ``<img src=x onerror=alert(1)>`` or ``[link](javascript:...)`` shows as plain text."""
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def show_error(err: BaseException | str) -> None:
    st.error(esc(err), icon=":material/error:")


@contextmanager
def guarded(what: str = "That") -> Iterator[None]:
    """Run tlcore calls; a TLError shows its own sentence, anything else a plain one (never a traceback)."""
    try:
        yield
    except TLError as err:
        show_error(err)
    except MemoryError:
        show_error("The server ran out of memory; try a smaller backbone, image size or batch size.")
    except Exception:  # noqa: BLE001 - the log keeps the traceback, the user gets a sentence
        log.exception("UI action failed")
        show_error(UNEXPECTED.format(what=what))


def call(what: str, fn, *args, **kwargs) -> tuple[bool, Any]:
    """``fn(*args, **kwargs)`` inside :func:`guarded`; returns (ok, result)."""
    with guarded(what):
        return True, fn(*args, **kwargs)
    return False, None


def flash() -> None:
    """Show (once) the message a previous page left for this one."""
    message = st.session_state.pop("flash", None)
    if message:
        st.info(esc(message), icon=":material/info:")
