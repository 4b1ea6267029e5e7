"""Transfer Learning Studio: the web app's entry point (navigation, identity, status strip).

Run with:  python -m streamlit run app.py
Nothing here imports TensorFlow: a background thread warms it while the home page is already usable.

The page scripts live in ``views/``, not ``pages/``: with a ``pages/`` folder next to this file, Streamlit 1.67
still runs its old folder-based navigation until a session has executed ``st.navigation`` once, so the first
visitor after a restart who opens a bookmarked ``/train`` link would run ``pages/train.py`` without this file
(no identity, no status strip, and every ``pages/_*.py`` helper listed as a page). AppTest does the same on
every second run.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from streamlit.runtime.scriptrunner import script_runner as _script_runner  # noqa: E402

from views import _ui  # noqa: E402
from views._pages import HOME, STEPS  # noqa: E402

# After every script run (and every 1-second fragment run of a live Train page) Streamlit 1.67 calls
# keras.backend.clear_session() (script_runner._clean_problem_modules): a full gc.collect() and a flush of
# TensorFlow's kernel cache while training threads run in this process. Watching a run made it 4-40x slower
# (a 3-epoch run: 51 s unwatched, 272 s watched, 64 s watched without the call). Nothing in the studio relies on
# Keras's global name counters being reset.
_script_runner._clean_problem_modules = lambda: None

# "auto": the sidebar opens on wide screens and stays closed on narrow ones (a phone), where it would cover the page.
st.set_page_config(page_title="Transfer Learning Studio", page_icon="🧠", layout="wide",
                   initial_sidebar_state="auto")

if _ui.needs_login():
    st.title("Transfer Learning Studio")
    st.write("This server asks everyone to log in, so that your images and models stay yours.")
    if st.button("Log in", key="login_button", type="primary", help="Opens the sign-in page of this server."):
        st.login()
    st.stop()

st.session_state["owner"] = _ui.owner()
_ui.session_tmp()                 # this tab's temporary folder; removed when the session ends

pages = [st.Page(p.file, title=p.title, icon=p.icon, default=p is HOME) for p in (HOME, *STEPS)]
page = st.navigation(pages)
_ui.sync_url()
try:
    page.run()
except Exception:  # noqa: BLE001 - a page bug shows a sentence, never a traceback
    _ui.log.exception("page failed")
    _ui.show_error(_ui.UNEXPECTED.format(what="This page"))
finally:
    # After the page (also when it stops early), so the strip shows what the page just did.
    try:
        if page.url_path == "model":
            _ui.note_model_page()      # the model on the page is the one chosen for the current dataset
        _ui.status_strip()
    except Exception:  # noqa: BLE001 - the strip is a convenience; never let it break a page
        _ui.log.exception("status strip failed")
_ui.start_background_work()
