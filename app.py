"""Transfer Learning Studio: the web app's entry point (navigation, identity, status strip).

Run with:  python -m streamlit run app.py
Nothing here imports TensorFlow: a background thread warms it while the home page is already usable.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from pages import _ui  # noqa: E402

st.set_page_config(page_title="Transfer Learning Studio", page_icon="🧠", layout="wide",
                   initial_sidebar_state="expanded")

if _ui.needs_login():
    st.title("Transfer Learning Studio")
    st.write("This server asks everyone to log in, so that your images and models stay yours.")
    if st.button("Log in", key="login_button", type="primary", help="Opens the sign-in page of this server."):
        st.login()
    st.stop()

st.session_state["owner"] = _ui.owner()

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="1 · Data", icon=":material/photo_library:"),
    st.Page("pages/model.py", title="2 · Model", icon=":material/account_tree:"),
    st.Page("pages/train.py", title="3 · Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="4 · Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="5 · Predict", icon=":material/image_search:"),
    st.Page("pages/export.py", title="6 · Export", icon=":material/download:"),
]
page = st.navigation(pages)
_ui.sync_url()
try:
    _ui.status_strip()
except Exception:  # noqa: BLE001 - the strip is a convenience; never let it break a page
    _ui.log.exception("status strip failed")
try:
    page.run()
except Exception:  # noqa: BLE001 - a page bug shows a sentence, never a traceback
    _ui.log.exception("page failed")
    _ui.show_error(_ui.UNEXPECTED.format(what="This page"))
_ui.start_background_work()
