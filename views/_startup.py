"""Work outside any page: the once-per-process start-up (lost runs, leftovers, retention, warming TensorFlow) and
each browser session's temporary folder."""
from __future__ import annotations

import os
import secrets
import threading
import time

import streamlit as st

from tlcore import housekeeping
from views._engine import manager
from views._text import log

_PROCESS_START = time.time()          # leftovers older than this belong to a previous server process
_STARTED = threading.Event()
_STOP_WAITING = threading.Event()


def start_background_work() -> None:
    """Once per server process: mark lost runs as interrupted, warm TensorFlow, and apply retention."""
    if _STARTED.is_set() or os.environ.get("TLS_WARM_TF", "1") == "0":
        return
    _STARTED.set()

    def warm() -> None:
        _STOP_WAITING.wait(2.0)                      # let the first page reach the browser before the heavy import
        try:
            manager()                                # recovers interrupted runs, starts the workers
            housekeeping.sweep_leftovers(_PROCESS_START)
            housekeeping.cleanup()
            import tlcore.tf_env  # noqa: F401     # the 4-5 s TensorFlow import, off the page's thread
            import tlcore.backbones  # noqa: F401
            import tlcore.strategies  # noqa: F401
            import tlcore.data  # noqa: F401
            from tlcore import audit_features

            audit_features.warm()                    # the data check's model, built and traced once
        except Exception:  # noqa: BLE001 - warming is an optimisation only
            log.exception("background warm-up failed")

    threading.Thread(target=warm, name="tls-warm-up", daemon=True).start()


def _end_session(folder) -> None:
    try:
        housekeeping.end_session(folder)
    except Exception:  # noqa: BLE001 - runs in Streamlit's teardown; never raise there
        log.exception("removing a session's temporary folder failed")


@st.cache_resource(scope="session", on_release=_end_session, show_spinner=False)
def _session_folder(key: str):
    return housekeeping.session_dir(key)


def session_tmp():
    """This browser session's temporary folder (upload spooling); Streamlit deletes it when the session ends."""
    key = st.session_state.setdefault("session_key", secrets.token_hex(8))
    folder = _session_folder(key)
    folder.mkdir(parents=True, exist_ok=True)             # recreated after a reconnect emptied it
    return folder
