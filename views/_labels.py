"""Plain words for runs and datasets in pickers, tables and the sidebar."""
from __future__ import annotations

import os

import streamlit as st

from tlcore import workspace as ws
from tlcore.errors import TLError
from views._engine import store

STATE_TEXT = {"queued": "waiting", "running": "training"}   # plain words (selectbox options, tables)
STATE_WORDS = {"queued": ":material/hourglass_top: waiting", "running": ":material/directions_run: training",
               "done": ":material/check_circle: done", "failed": ":material/cancel: failed",
               "stopped": ":material/stop_circle: stopped", "interrupted": ":material/warning: interrupted"}


def run_dataset_name(run_id: str) -> str | None:
    """The name of the dataset a run trained on (None when it is not an imported dataset, or was deleted)."""
    try:
        data = store().config(run_id).data
    except TLError:
        return None
    if ws.dataset_id_of(data):
        return ws.dataset_name(data)
    if not data:
        return None
    return os.path.basename(str(data).rstrip("/\\")) or None


def dataset_suffix(run_id: str) -> str:
    """The text " · on <dataset>" for a run list's label, or "" when the dataset is unknown."""
    name = run_dataset_name(run_id)
    return f" · on {name}" if name else ""


def state_text(state: str) -> str:
    """A run state in plain words ("waiting", "training", "done", ...)."""
    return STATE_TEXT.get(state, state)


def run_label(record, me: str | None = None) -> str:
    """Plain text naming a run in a selectbox: its name, its dataset, accuracy and id suffix."""
    me = me or st.session_state.get("owner")
    acc = record.metrics.get("accuracy")
    text = f"{record.name or record.strategy}{dataset_suffix(record.id)}"
    if acc is not None and record.state.value in ("done", "stopped"):
        text += f" · accuracy {acc:.0%}"
    text += f" · {record.id[-6:]}"
    return text + ("" if record.owner == me else " · shared with you")


def dataset_label(info: ws.DatasetInfo, me: str) -> str:
    """Plain text for a selectbox option (selectbox options are not Markdown)."""
    text = f"{info.name} · {info.n_images} images · {info.n_classes} classes"
    if info.owner != me:
        text += " · shared with you"
    elif info.shared:
        text += " · shared"
    return text
