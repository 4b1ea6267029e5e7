"""URL state and moving between pages: ``u`` (the anonymous owner) and ``run`` (the current run) in every link."""
from __future__ import annotations

import re
from typing import Any

import streamlit as st

from views._engine import store, visible_run
from views._identity import login_state
from views._pages import PAGES


def url_params(run_id: str | None = "current") -> dict:
    """The query parameters every link keeps: ``u`` (anonymous owner) and ``run`` (the current run)."""
    params = {}
    if not login_state()[1] and st.session_state.get("owner_token"):
        params["u"] = st.session_state["owner_token"]
    run = current_run_id() if run_id == "current" else run_id
    if run:
        params["run"] = run
    return params


def sync_url() -> None:
    """Write ``u`` and ``run`` back into the URL (navigation clears them), so a refresh keeps both."""
    params = url_params()
    for key, value in params.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    if "run" in st.query_params and "run" not in params:
        del st.query_params["run"]                 # a run this person may not see (or that no longer exists)


def current_run_id() -> str | None:
    """The run in the URL (or this session's), if this owner may see it; else the owner's latest run."""
    me = st.session_state.get("owner")
    for candidate in (st.query_params.get("run"), st.session_state.get("run_id")):
        if candidate and visible_run(candidate, me) is not None:
            st.session_state["run_id"] = candidate
            return candidate
    if me:
        runs = store().list(owner=me, include_shared=False)
        if runs:
            st.session_state["run_id"] = runs[0].id
            return runs[0].id
    return None


def option_id(value: str | None, ids: list[str]) -> str | None:
    """The run id a run picker chose. When a run's label changes while it is shown (training → done), the browser
    can send back the old label instead of the id; every label shows the id's last 6 characters as "· abc123"."""
    if value in ids:
        return value
    matches = [i for i in ids if value and re.search(rf"· {re.escape(i[-6:])}\b", str(value))]
    return matches[0] if len(matches) == 1 else None


def choose_run(key: str, ids: list[str]) -> None:
    """A run picker's ``on_change``: make its choice the current run (an unknown value changes nothing)."""
    run_id = option_id(st.session_state.get(key), ids)
    if run_id:
        set_current_run(run_id)


def set_current_run(run_id: str | None) -> None:
    st.session_state["run_id"] = run_id
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]


def go(page: str) -> None:
    """Switch to another step, keeping ``u`` and ``run`` in the URL."""
    st.switch_page(PAGES[page], query_params=url_params())


def link(page: str, label: str, icon: str | None = None, **kw: Any) -> None:
    st.page_link(PAGES[page], label=label, icon=icon, query_params=url_params(), **kw)
