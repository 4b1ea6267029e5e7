"""Comparisons: the launcher on the Train page (one click queues a set of runs on the same split and seed) and the
side-by-side view on the Evaluate page (accuracy, F1 per class, time, trainable parameters, overlaid curves)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from views import _charts, _ui
from tlcore import catalog, compare, results
from tlcore import workspace as ws
from tlcore.backbones import BACKBONES, get_spec
from tlcore.errors import TLError

ALL = ""


def launcher(draft: dict, me: str, blocked: bool) -> None:
    """The Train page's comparison form: strategies (scratch always offered), backbones, frozen layers; one button."""
    st.subheader("Compare strategies")
    st.caption("One click queues several runs on the same images, split and seed, with the settings above. They "
               "train one after another, and the Evaluate page sets them side by side. Training from scratch is "
               "the baseline that shows what transfer learning buys.")
    try:
        base = ws.config_from_draft(draft)
    except TLError as err:
        _ui.show_error(err)
        return
    options = compare.available(base)
    _ui.init("compare_strategies", list(dict.fromkeys([base.strategy, compare.BASELINE])))
    st.session_state["compare_strategies"] = [s for s in st.session_state["compare_strategies"] if s in options]
    strategies = st.multiselect(
        "Strategies", options, key="compare_strategies", format_func=catalog.TITLES.__getitem__,
        help="Each chosen strategy is one run. Domain adaptation and multi-task need their own inputs: choose them "
             "as the strategy above first, and they can be compared too.")
    own = bool(base.backbone_file)
    cols = st.columns(2)
    _ui.init("compare_backbones", [base.backbone])
    backbones = cols[0].multiselect(
        "Backbones", list(BACKBONES), key="compare_backbones", format_func=lambda n: get_spec(n).title,
        disabled=own, help="Every strategy runs on each chosen backbone. Small ones (MobileNet α=0.25) train in "
                           "a minute; big ones take much longer on a laptop.")
    _ui.init("compare_freezes", [])
    freezes = cols[1].multiselect(
        "Frozen layers (fine-tuning only)", list(compare.FREEZE_CHOICES), key="compare_freezes",
        disabled=not any(catalog.CATALOG[s].uses_freeze for s in strategies if s in catalog.CATALOG),
        help="Fine-tuning runs once per chosen setting; empty keeps the Model page's choice. The other strategies "
             "do not depend on it.")
    try:
        configs = compare.plan(base, strategies, None if own else backbones, freezes)
    except TLError as err:
        st.warning(_ui.esc(err), icon=":material/warning:")
        configs = []
    if configs:
        st.caption(f"{len(configs)} runs: " + "; ".join(_ui.esc(c.name.split(" · ", 1)[1]) for c in configs))
    missing = compare.missing_weights(configs)
    if missing:
        st.warning("The ImageNet weights of " + ", ".join(missing) + " are not on this server and cannot be "
                   "downloaded, so their transfer runs would fail: leave those backbones out, or add their "
                   "weights file (see the Model page).", icon=":material/cloud_off:")
    if st.button(f"Queue {len(configs)} runs" if configs else "Queue the comparison", key="compare_button",
                 disabled=blocked or not configs or bool(missing), icon=":material/compare_arrows:",
                 help="The runs wait in the training queue and start one after another; you may leave the page."):
        with _ui.guarded("Queueing the comparison"):
            ids = compare.submit(_ui.manager(), configs, me)
            _ui.set_current_run(ids[0])
            st.session_state["flash"] = (f"{len(ids)} runs queued. They train one after another; the Evaluate "
                                         "page shows them side by side.")
            st.rerun()


def _short(row: dict) -> str:
    """A run's name without the comparison prefix ("Comparison 3f2a 1/4 · Fine-tuning · …" → "1/4 · Fine-tuning · …")."""
    name = row["name"] or row["strategy"]
    prefix = f"Comparison {row['group'][:4]} "
    return name[len(prefix):] if row["group"] and name.startswith(prefix) else name


def _started(run_id: str) -> str:
    """When a run was queued, "14:02", from its id ("20261202-140213-…"); "" for an id of another form."""
    parts = run_id.split("-")
    return f"{parts[1][:2]}:{parts[1][2:4]}" if len(parts) > 2 and len(parts[1]) == 6 and parts[1].isdigit() else ""


def _group_label(group: str, rows: list[dict]) -> str:
    if group == ALL:
        return "All your runs"
    members = [r for r in rows if r["group"] == group]
    done = sum(r["state"] == "done" for r in members)
    return f"Comparison {group[:4]} ({len(members)} runs, {done} done)"


def show(store, me: str) -> None:
    """The side-by-side section: a choice of comparison, the table, F1 per class and overlaid curves."""
    st.subheader("Runs side by side")
    rows = results.compare_runs(store, me)
    if not rows:
        st.caption("No runs yet.")
        return
    groups = list(dict.fromkeys(r["group"] for r in rows if r["group"]))      # newest first
    if groups:
        _ui.init("compare_group", groups[0])
        if st.session_state["compare_group"] not in [ALL, *groups]:
            st.session_state["compare_group"] = groups[0]
        chosen = st.selectbox("Show", [*groups, ALL], key="compare_group",
                              format_func=lambda g: _group_label(g, rows),
                              help="A comparison is the set of runs queued together from the Train page: same "
                                   "images, same split, same seed.")
        if chosen != ALL:
            rows = [r for r in rows if r["group"] == chosen][::-1]        # in the order they were queued
    table = pd.DataFrame(results.table_rows(rows))        # "queued" / "training" where a run has no result yet
    table["run"] = [_short(r) for r in rows]
    table["state"] = [_ui.state_text(r["state"]) for r in rows]
    table["dataset"] = [_ui.run_dataset_name(r["run"]) or "—" for r in rows]
    table["started"] = [_started(r["run"]) for r in rows]
    st.dataframe(table[["run", "dataset", "started", "state", "strategy", "backbone", "weights", "frozen", "accuracy",
                        "macro F1", "epochs", "trainable params", "time"]], hide_index=True, width="stretch",
                 key="compare_table",
                 column_order=["run", "dataset", "accuracy", "macro F1", "time", "trainable params", "epochs",
                               "frozen", "weights", "started", "state"],
                 column_config={"run": st.column_config.TextColumn("Run"),
                                "dataset": st.column_config.TextColumn("Dataset"),
                                "started": st.column_config.TextColumn("Queued at"),
                                "accuracy": st.column_config.TextColumn("Accuracy"),
                                "macro F1": st.column_config.TextColumn("Macro F1"),
                                "time": st.column_config.TextColumn("Time"),
                                "trainable params": st.column_config.TextColumn("Trainable parameters"),
                                "epochs": st.column_config.TextColumn("Epochs"),
                                "frozen": st.column_config.TextColumn("Frozen"),
                                "weights": st.column_config.TextColumn("Weights"),
                                "state": st.column_config.TextColumn("State")})
    finished = [r["run"] for r in rows if r["state"] in ("done", "stopped")][:8]
    names = {r["run"]: f"{_short(r)} · {_ui.run_dataset_name(r['run']) or 'data'} · {_started(r['run'])}"
             for r in rows if r["run"] in finished}
    if len(set(names.values())) < len(names):                  # twins: their ids tell them apart
        names = {run: f"{name} · {run[-6:]}" for run, name in names.items()}
    if len(finished) > 1:
        f1 = results.per_class_f1(store, finished)
        if f1:
            st.markdown("**F1 of each class** (1.0 is perfect)")
            st.dataframe(pd.DataFrame(f1).rename(columns=names), hide_index=True, width="stretch",
                         key="compare_f1_table",
                         column_config={n: st.column_config.NumberColumn(format="%.2f") for n in names.values()})
        st.plotly_chart(_charts.compare_curves(results.compare_curves(store, finished), names),
                        key="compare_chart", width="stretch")
    elif any(r["state"] in ("queued", "running") for r in rows):
        st.caption("The curves appear here once two runs have finished; the rest are still waiting or training.")


def cleaning(store, me: str) -> None:
    """"What cleaning bought": runs with the same settings on versions of one dataset, side by side."""
    rows = compare.cleaning_effect(store, me)
    if not rows:
        return
    st.subheader("What cleaning bought")
    st.caption("Runs with the same settings on each version of a dataset (the Data page's fixes make the "
               "versions). When a fix removed copies that sat in both the training and the test images, the "
               "earlier score was flattered, so a lower score after cleaning can be the honest one.")
    table = pd.DataFrame({
        "Dataset": [_ui.esc(r["dataset"]) for r in rows],
        "Version": [_ui.esc(r["version"]) for r in rows],
        "Settings": [_ui.esc(r["settings"]) for r in rows],
        "Test accuracy": [f"{r['accuracy']:.1%}" for r in rows],
        "Change from the first version": ["—" if r["change"] is None else f"{r['change']:+.1f} points" for r in rows],
        "Macro F1": ["—" if r["macro F1"] is None else f"{r['macro F1']:.2f}" for r in rows],
        "Test images": [str(r["test images"] or "—") for r in rows]})
    st.table(table, hide_index=True, border="horizontal")       # a few rows: a plain table a screen reader reads
