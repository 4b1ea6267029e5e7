"""The sidebar: which steps are done for the current dataset and run, the current run (followed live while it
waits or trains), and the private link of this workspace.

A step is ticked only when it is done for the dataset and run in front of the user:
Data - a dataset is chosen; Model - a model was chosen for that dataset (or the current run trained one on it);
Train - the current run finished ("done") on that dataset; Evaluate - that run's evaluation was opened;
Predict - a prediction was made with that run; Export - an export of that run exists.
"""
from __future__ import annotations

import streamlit as st

from views import _identity, _ui
from tlcore.errors import TLError

LIVE_EVERY_S = 2.0                    # how often the sidebar looks at a run that waits or trains
PAGE_FOLLOWS = "sidebar_page_follows"  # session key: the run the page's own poller follows in this script run


def _has_export(run_dir) -> bool:
    folder = run_dir / "exports"
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


def steps_done(draft: dict, dataset, record) -> dict[str, bool]:
    """Which steps count as done (see the module docstring). ``record`` is the current run's, or None."""
    done = dict.fromkeys(_ui.STEP_TITLES, False)
    if dataset is None:
        return done
    done["data"] = True
    store = _ui.store()
    trained = False
    if record is not None and record.state.value == "done":
        run_dir = store.run_dir(record.id)
        try:
            trained = store.config(record.id).data == dataset.ref and (run_dir / "model.keras").is_file()
        except TLError:
            trained = False
    done["model"] = trained or (bool(draft.get("model")) and draft.get("model_dataset", dataset.id) == dataset.id)
    done["train"] = trained
    if trained:
        marks = draft.get("done_runs") or {}
        run_dir = store.run_dir(record.id)
        done["evaluate"] = record.id in (marks.get("evaluate") or []) and (run_dir / "evaluation.json").is_file()
        done["predict"] = record.id in (marks.get("predict") or [])
        done["export"] = _has_export(run_dir)
    return done


def _progress(draft: dict, dataset, done: dict[str, bool]) -> None:
    next_step = next((k for k in _ui.STEP_TITLES if not done[k]), None)
    st.markdown("**Your progress**")
    lines = []
    for key, title in _ui.STEP_TITLES.items():
        mark = (":green[:material/check_circle:]" if done[key] else
                ":blue[:material/arrow_forward:]" if key == next_step else ":gray[:material/radio_button_unchecked:]")
        extra = ""
        if key == "data" and dataset is not None:
            extra = f" · {_ui.esc(dataset.name)}"
        if key == "model" and draft.get("model_title"):
            extra = f" · {_ui.esc(draft['model_title'])}"
        lines.append(f"{mark} {title}{extra}")
    st.markdown("  \n".join(lines))
    if next_step:
        _ui.link(next_step, f"Next: {_ui.STEP_TITLES[next_step].split(' · ')[1]}", icon=":material/arrow_forward:")


def _run_box(record) -> None:
    st.markdown("**Current run**")
    words = _ui.STATE_WORDS.get(record.state.value, record.state.value)
    acc = record.metrics.get("accuracy")
    text = f"{_ui.esc(record.name or record.strategy)} · {words}"
    if acc is not None:
        text += f" · accuracy {acc:.0%}"
    st.markdown(text)
    dataset = _ui.run_dataset_name(record.id)
    st.caption((f"Trained on {_ui.esc(dataset)} · " if dataset else "") + f"Run {_ui.esc(record.id)}")


def page_follows(run_id: str) -> None:
    """Called by a page whose own poller follows ``run_id`` in this script run and reruns the app when its state
    changes (the Train page's live view): the sidebar then draws the run once instead of polling it as well."""
    st.session_state[PAGE_FOLLOWS] = run_id


@st.fragment(run_every=LIVE_EVERY_S)
def _live_run_box(run_id: str, seen_state: str) -> None:
    """Redraws the run's line every few seconds; when its state changes (it starts, ends, fails or is stopped),
    the whole app reruns so the ticks, the Next link and the page follow."""
    record = _ui.visible_run(run_id)
    if record is None or record.state.value != seen_state:
        st.rerun()
    _run_box(record)


def draw() -> None:
    """The whole sidebar strip (called by app.py after the page; also as ``_ui.status_strip``)."""
    followed = st.session_state.pop(PAGE_FOLLOWS, None)      # set by this script run's page, if at all
    me = st.session_state["owner"]
    draft = _ui.draft()
    dataset = _ui.current_dataset()
    run_id = _ui.current_run_id()
    record = _ui.visible_run(run_id, me) if run_id else None
    done = steps_done(draft, dataset, record)
    with st.sidebar:
        _progress(draft, dataset, done)
        if record is not None:
            if record.state.finished or record.id == followed:
                _run_box(record)
            else:
                _live_run_box(record.id, record.state.value)
        st.divider()
        email = _ui._login()[1]
        _identity.identity_box(st.session_state.get("owner_token"), email)
