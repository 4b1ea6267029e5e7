"""Shared Streamlit helpers for the pages, in one import (``from views import _ui``).

Each concern has its own module, re-exported here: :mod:`views._text` (escaping, errors), :mod:`views._identity`
(who is using the studio), :mod:`views._nav` (URL state, links), :mod:`views._pages` (the page table),
:mod:`views._engine` (runs, drafts, datasets), :mod:`views._labels` (plain words for runs and datasets) and
:mod:`views._startup` (start-up work, temporary folders). What is left here draws widgets.

No TensorFlow here (and nothing that imports it at module level): the home page must render at once.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from views._engine import (current_dataset, draft, manager, mark_step, note_model_page, save_draft,  # noqa: F401
                           store, visible_run)
from views._identity import login_state, needs_login, owner  # noqa: F401
from views._labels import (STATE_TEXT, STATE_WORDS, dataset_label, dataset_suffix, run_dataset_name,  # noqa: F401
                           run_label, state_text)
from views._nav import (choose_run, current_run_id, go, link, option_id, set_current_run, sync_url,  # noqa: F401
                        url_params)
from views._pages import PAGES, STEP_TITLES  # noqa: F401
from views._startup import session_tmp, start_background_work  # noqa: F401
from views._text import UNEXPECTED, call, esc, flash, guarded, log, show_error  # noqa: F401

_login = login_state                  # the sidebar's name for it


def status_strip() -> None:
    """Sidebar: which steps are done, what comes next, the current run with its state, and the private link."""
    from views import _sidebar

    _sidebar.draw()


def init(key: str, value: Any) -> None:
    """Give a widget its starting value (from the saved draft) once; the widget then owns it."""
    if key not in st.session_state:
        st.session_state[key] = value


def pick_done_run(key: str, purpose: str):
    """A selectbox of this owner's finished runs that have a model (plus shared ones); returns the record or None.

    Defaults to the current run; choosing another makes it the current run."""
    me = st.session_state["owner"]
    runs = [r for r in store().list(owner=me) if r.state.value in ("done", "stopped")
            and (store().run_dir(r.id) / "model.keras").is_file()]
    if not runs:
        st.info(f"There is no trained model yet to {purpose}: train one first.", icon=":material/arrow_back:")
        link("train", "Go to 3 · Train", icon=":material/model_training:")
        return None
    ids = [r.id for r in runs]
    current = current_run_id()
    st.session_state[key] = current if current in ids else ids[0]
    records = {r.id: r for r in runs}
    st.selectbox("Model (training run)", ids, key=key, format_func=lambda run_id: run_label(records[run_id], me),
                 on_change=choose_run, args=(key, ids),
                 help="Your trained runs, newest first, with the dataset each trained on (and runs a teacher "
                      "shared).")
    from views import _runs_ui

    chosen = records[st.session_state[key]]
    _runs_ui.manage(chosen, key=f"{key}_manage")
    if purpose == "evaluate":
        mark_step("evaluate", chosen.id)
    return records[st.session_state[key]]
