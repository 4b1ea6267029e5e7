"""The live (or final) view of one run: queue position, progress with ETA, curves, and the outcome."""
from __future__ import annotations

import streamlit as st

from views import _charts, _ui
from tlcore.errors import TLError
from tlcore.progress import duration_text, status_line, summarize


def _expected_epochs(run_id: str) -> int | None:
    cache = st.session_state.setdefault("expected_epochs", {})
    if run_id not in cache:
        try:
            config = _ui.store().config(run_id)
            cache[run_id] = config.epochs + (config.fine_tune_epochs if config.strategy == "fine_tune" else 0)
        except TLError:
            cache[run_id] = None
    return cache[run_id]


def restart(run_id: str) -> None:
    """Queue a new run with the same settings as ``run_id`` and make it the current run."""
    with _ui.guarded("Restarting the run"):
        config = _ui.store().config(run_id)
        new_id = _ui.manager().submit(config, st.session_state["owner"])
        _ui.set_current_run(new_id)
        st.rerun()


def _next_in_comparison(run_id: str) -> None:
    """After one run of a comparison ends: a way to follow the next one that is waiting or training."""
    try:
        group = _ui.store().config(run_id).group
    except TLError:
        return
    if not group:
        return
    me = st.session_state["owner"]
    active = [r for r in reversed(_ui.store().list(owner=me, include_shared=False))
              if not r.state.finished and _ui.store().config(r.id).group == group]
    if active:
        st.info(f"{len(active)} more run{'s' if len(active) > 1 else ''} of this comparison "
                f"{'are' if len(active) > 1 else 'is'} waiting or training.", icon=":material/compare_arrows:")
        if st.button("Follow the next run", key="follow_next_button",
                     help="Shows the comparison's run that trains now (or next)."):
            _ui.set_current_run(active[0].id)
            st.rerun()


def render(run_id: str) -> bool:
    """Draw the run; returns True when it has finished."""
    record = _ui.visible_run(run_id)
    if record is None:
        st.warning("This run is not available: it was deleted, or it belongs to someone else.")
        return True
    progress = summarize(_ui.store().read_events(run_id), _expected_epochs(run_id))
    state = record.state.value
    mine = record.owner == st.session_state["owner"]
    st.markdown(f"**{_ui.esc(record.name or record.strategy)}** · {_ui.STATE_WORDS.get(state, state)}"
                + (f" · {duration_text(record.duration)}" if record.duration else ""))
    if state == "queued":
        position = _ui.manager().queue_position(run_id)
        if position:
            st.info(f"Waiting for a free training slot: you are number {position} in the queue. The run starts "
                    "by itself; you may leave this page.", icon=":material/hourglass_top:")
        else:
            st.info("Waiting to start…", icon=":material/hourglass_top:")
    elif state == "running":
        st.progress(progress.fraction, text=status_line(progress))
    if progress.epochs:
        st.plotly_chart(_charts.training_curves(progress.epochs, progress.fine_tune_start, progress.total_epochs),
                        key=f"curves_{run_id}", width="stretch")
    elif state == "running":
        st.caption("The curves appear after the first epoch.")
    for warning in progress.warnings:
        st.warning(_ui.esc(warning), icon=":material/warning:")
    if state in ("queued", "running") and mine:
        if st.button("Stop", key="stop_button", help="Stops after the current batch. A model trained so far is "
                                                      "kept and can still be evaluated."):
            with _ui.guarded("Stopping the run"):
                _ui.manager().stop(run_id)
                st.toast("Stopping…")
    if record.state.finished and mine:
        _next_in_comparison(run_id)
    if state == "done":
        acc = record.metrics.get("accuracy")
        outcome = (f" Accuracy on the test images: **{acc:.1%}**." if acc is not None else
                   " There were no test images to measure accuracy on.")
        st.success("Training finished." + outcome, icon=":material/check_circle:")
        _ui.link("evaluate", "Next: evaluate the model", icon=":material/arrow_forward:")
    elif state == "failed":
        _ui.show_error(record.error or progress.message or "The run failed.")
    elif state == "stopped":
        st.info(_ui.esc(record.error or progress.message or "You stopped this run.")
                + (" The model trained so far was kept." if record.metrics else ""), icon=":material/stop_circle:")
    elif state == "interrupted":
        st.warning(_ui.esc(record.error or "The server stopped while this run was in progress."),
                   icon=":material/warning:")
    if state in ("failed", "stopped", "interrupted") and mine:
        if st.button("Restart with the same settings", key="restart_button",
                     help="Starts a new run with exactly these settings; this one stays in your list."):
            restart(run_id)
    return record.state.finished


@st.fragment(run_every=1.0)
def live(run_id: str) -> None:
    """Polls the run store once a second (never blocks); a full rerun when the run ends shows the final view."""
    if render(run_id):
        st.rerun()


def show(run_id: str) -> None:
    record = _ui.visible_run(run_id)
    if record is not None and not record.state.finished:
        live(run_id)
    else:
        render(run_id)
