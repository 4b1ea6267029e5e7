"""The live (or final) view of one run: queue position, progress with ETA, curves, and the outcome.

While the run waits or trains, :func:`live` is the Train page's one poller: each tick reads the run's row and its
events once and draws from them; the sidebar draws the same run without polling (``_sidebar.page_follows``), and
when the run's state changes the whole app reruns so the sidebar and the run picker follow.
"""
from __future__ import annotations

import streamlit as st

from views import _charts, _sidebar, _ui
from tlcore.catalog import planned_epochs
from tlcore.errors import TLError
from tlcore.progress import duration_text, stages, status_line, summarize
from tlcore.results import chance_verdict, final_accuracy

STAGE_MARKS = {"done": "✓", "now": "▶", "next": "○"}
LIVE_EVERY_S = 1.0                    # how often the live view reads a run that waits or trains
WATCH_EVERY_S = 2.0                   # how often a finished run's page looks at this person's other runs


def _expected_epochs(run_id: str) -> int | None:
    cache = st.session_state.setdefault("expected_epochs", {})
    if run_id not in cache:
        try:
            config = _ui.store().config(run_id)
            cache[run_id] = planned_epochs(config)          # what the catalog says the strategy plans
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


def next_in_comparison(run_id: str) -> str | None:
    """The comparison's run that trains now (or next) after ``run_id``, among this person's runs; else None."""
    try:
        group = _ui.store().config(run_id).group
    except TLError:
        return None
    if not group:
        return None
    me = st.session_state["owner"]
    active = []
    for r in reversed(_ui.store().list(owner=me, include_shared=False)):      # oldest first: the queue's order
        try:
            if not r.state.finished and _ui.store().config(r.id).group == group:
                active.append(r)
        except TLError:
            continue
    running = [r for r in active if r.state.value == "running"]
    pick = running or active
    return pick[0].id if pick else None


def _next_in_comparison(run_id: str) -> None:
    """After one run of a comparison ends (seen later, not live): a way to follow the next one."""
    next_id = next_in_comparison(run_id)
    if next_id:
        st.info("More runs of this comparison are waiting or training.", icon=":material/compare_arrows:")
        if st.button("Follow the next run", key="follow_next_button",
                     help="Shows the comparison's run that trains now (or next)."):
            _ui.set_current_run(next_id)
            st.rerun()


def _chance_note(run_id: str, record, progress) -> str | None:
    """The stored "no better than guessing" warning, or one worked out now for a run saved before it existed."""
    if record.metrics.get("chance_warning"):
        return record.metrics["chance_warning"]
    n_classes = record.metrics.get("classes")
    if not n_classes:
        return None
    accuracy, which = final_accuracy(record.metrics, progress.epochs)
    try:
        config = _ui.store().config(run_id)
    except TLError:
        return None
    return chance_verdict(accuracy, n_classes, weights=config.weights, strategy=config.strategy, which=which)


def _stage_line(record, progress) -> str:
    return "  ·  ".join(f"{STAGE_MARKS[status]} {_ui.esc(label)}"
                        for label, status in stages(progress, record.strategy))


def _target_score(record) -> None:
    """Domain adaptation: the target images' score (their labels were used for scoring only, never to train)."""
    target = record.metrics.get("target_accuracy")
    if target is None:
        return
    st.info(f"Accuracy on the target images: **{target:.1%}** (their labels were used only to score the model, "
            "never to train it).", icon=":material/travel_explore:")


def _trials(progress, run_id: str) -> None:
    """The automatic search: one row per setting tried (best first) and the winner."""
    import pandas as pd

    rows = sorted(progress.trials, key=lambda r: -(r.get("score") or 0))
    frame = pd.DataFrame([{"trial": r["trial"], "hidden units": r.get("units") or "none",
                           "dropout": r.get("dropout"), "optimiser": r.get("optimizer"),
                           "learning rate": r.get("learning_rate"), "class weights": r.get("class_weights"),
                           "score": r.get("score"), "epochs": r.get("epochs"), "seconds": r.get("seconds"),
                           "outcome": "stopped early (below the median)" if r.get("state") == "pruned" else "tried"}
                          for r in rows])
    st.markdown(f"**Settings tried: {len(rows)}**")
    st.dataframe(frame, hide_index=True, width="stretch", key=f"trials_{run_id}",
                 column_config={"score": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent"),
                                "learning rate": st.column_config.NumberColumn(format="%.1e"),
                                "dropout": st.column_config.NumberColumn(format="%.2f")})
    if progress.search:
        best = progress.search.get("best") or {}
        st.success(f"Best: {best.get('units') or 'no'} hidden units, dropout {best.get('dropout', 0):.2f}, "
                   f"{best.get('optimizer')} at {best.get('learning_rate', 0):.1e}, "
                   f"{progress.search.get('epochs')} epochs: {progress.search.get('score', 0):.0%} "
                   f"({_ui.esc(progress.search.get('scoring') or '')}). It is now trained on every training image.",
                   icon=":material/emoji_events:")


def render(run_id: str, record) -> bool:
    """Draw the run from ``record`` (its row, as ``_ui.visible_run`` read it; None when not visible) and its events;
    returns True when it has finished."""
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
        if progress.stages_seen:
            st.caption(_stage_line(record, progress))
    if progress.trials:
        _trials(progress, run_id)
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
    chance = _chance_note(run_id, record, progress) if state in ("done", "stopped") else None
    if state == "done":
        acc = record.metrics.get("accuracy")
        outcome = (f" Accuracy on the test images: **{acc:.1%}**." if acc is not None else
                   " There were no test images to measure accuracy on.")
        if chance:
            st.warning(_ui.esc(chance), icon=":material/report:")
        else:
            st.success("Training finished." + outcome, icon=":material/check_circle:")
        _target_score(record)
        _ui.link("evaluate", "Next: evaluate the model", icon=":material/arrow_forward:")
    elif state == "failed":
        _ui.show_error(record.error or progress.message or "The run failed.")
    elif state == "stopped":
        st.info(_ui.esc(record.error or progress.message or "You stopped this run.")
                + (" The model trained so far was kept." if record.metrics else ""), icon=":material/stop_circle:")
        if chance:
            st.warning(_ui.esc(chance), icon=":material/report:")
    elif state == "interrupted":
        st.warning(_ui.esc(record.error or "The server stopped while this run was in progress."),
                   icon=":material/warning:")
    if state in ("failed", "stopped", "interrupted") and mine:
        if st.button("Restart with the same settings", key="restart_button",
                     help="Starts a new run with exactly these settings; this one stays in your list."):
            restart(run_id)
    return record.state.finished


@st.fragment(run_every=LIVE_EVERY_S)
def live(run_id: str, seen_state: str) -> None:
    """The page's one poller while the run waits or trains (never blocks): each tick reads the run once and redraws
    it. When its state is no longer ``seen_state`` (it starts, ends, fails or is stopped) the whole app reruns, so
    the run picker and the sidebar follow; when it ends in a comparison, the page follows the next run by itself."""
    record = _ui.visible_run(run_id)
    if record is not None and record.state.value == seen_state:
        render(run_id, record)
        return
    if record is None or record.state.finished:
        next_id = next_in_comparison(run_id)
        if next_id and next_id != run_id:
            name = (record.name or record.strategy) if record else "The run"
            ended = {"done": "finished", "stopped": "was stopped", "failed": "failed"}.get(
                record.state.value if record else "done", "ended")
            st.session_state["flash"] = f"{name} {ended}; now following the next run of the comparison."
            _ui.set_current_run(next_id)
    st.rerun()


@st.fragment(run_every=WATCH_EVERY_S)
def watch(owner: str) -> None:
    """While the page shows a finished run, reruns the page when one of this person's other runs changes state, so
    the run picker never says "training" after the end."""
    now = tuple((r.id, r.state.value) for r in _ui.store().list(owner=owner, include_shared=False)
                if not r.state.finished)
    key = "watched_runs"
    if key in st.session_state and st.session_state[key] != now:
        st.session_state[key] = now
        st.rerun()
    st.session_state[key] = now


def show(run_id: str) -> None:
    """The run on the Train page: followed live while it waits or trains (the page's only poller: the sidebar then
    draws it without polling), else drawn once, watching this person's other runs while any is active."""
    record = _ui.visible_run(run_id)
    if record is not None and not record.state.finished:
        _sidebar.page_follows(run_id)
        live(run_id, record.state.value)
    else:
        render(run_id, record)
        if any(not r.state.finished for r in _ui.store().list(owner=st.session_state["owner"],
                                                              include_shared=False)):
            watch(st.session_state["owner"])
