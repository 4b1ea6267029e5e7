"""The engine behind the pages: the job manager and run store, visible runs, this owner's draft and dataset."""
from __future__ import annotations

import re
from typing import Any

import streamlit as st

from tlcore import workspace as ws
from tlcore.errors import TLError


def manager():
    from tlcore.jobs import get_manager

    return get_manager()


def store():
    return manager().store


def visible_run(run_id: str | None, me: str | None = None):
    """The run's record when ``me`` owns it or it is shared; None otherwise (or when it does not exist)."""
    if not run_id or not re.fullmatch(r"[0-9A-Za-z\-]{6,64}", str(run_id)):
        return None
    me = me or st.session_state.get("owner")
    try:
        record = store().get(run_id)
    except TLError:
        return None
    return record if (record.owner == me or record.shared) else None


def draft() -> dict:
    return ws.load_draft(st.session_state["owner"])


def save_draft(**changes: Any) -> dict:
    """Merge ``changes`` into this owner's draft; a new model choice is noted as made for the current dataset."""
    if "model" in changes and "model_dataset" not in changes:
        changes["model_dataset"] = changes.get("dataset_id") or draft().get("dataset_id")
    return ws.update_draft(st.session_state["owner"], **changes)


def current_dataset() -> ws.DatasetInfo | None:
    dataset_id = draft().get("dataset_id")
    if not dataset_id:
        return None
    try:
        return ws.get_dataset(st.session_state["owner"], dataset_id)
    except TLError:
        return None


def mark_step(step: str, run_id: str | None) -> None:
    """Record that ``step`` ("evaluate", "predict") was done with run ``run_id`` (the sidebar ticks it)."""
    if not run_id:
        return
    ids = list((draft().get("done_runs") or {}).get(step) or [])
    if run_id not in ids:
        save_draft(done_runs={step: (ids + [run_id])[-100:]})


def note_model_page() -> None:
    """After the Model page ran: the model in the draft is the one chosen for the current dataset."""
    d = draft()
    if d.get("model") and d.get("dataset_id") and d.get("model_dataset") != d["dataset_id"]:
        save_draft(model_dataset=d["dataset_id"])
