"""Evaluate page: results only some strategies produce, keyed by what the catalog says each produces."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from tlcore import catalog


def _target_scores(ev: dict) -> None:
    if ev.get("target_accuracy") is not None:
        st.subheader("On the target images")
        cols = st.columns(2)
        cols[0].metric("Adapted model", f"{ev['target_accuracy']:.1%}",
                       help="Accuracy on the target images whose labels were known (labels were only used to score).")
        if ev.get("source_only_target_accuracy") is not None:
            delta = ev["target_accuracy"] - ev["source_only_target_accuracy"]
            cols[1].metric("Without adaptation", f"{ev['source_only_target_accuracy']:.1%}",
                           delta=f"{delta:+.1%} from adapting", delta_color="off",
                           help="The same head trained on the source images only, scored on the same target images.")


def _tasks(ev: dict) -> None:
    tasks = ev.get("tasks")
    if isinstance(tasks, dict) and len(tasks) > 1:
        st.subheader("Every label column at a glance")
        rows = [{"label column": name, "accuracy": r.get("accuracy"), "macro F1": r.get("macro_f1"),
                 "test images": r.get("n"), "images without this label": r.get("missing")}
                for name, r in tasks.items() if isinstance(r, dict)]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="tasks_table",
                     column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                    "macro F1": st.column_config.NumberColumn(format="%.2f")})


def _episodes(ev: dict) -> None:
    few = ev.get("few_shot")
    if isinstance(few, dict) and few.get("results"):
        st.subheader("Few-shot episodes")
        st.caption("Each episode picks a few classes and a few example photos of each, builds their prototypes "
                   "from those photos only, then classifies other photos of the same classes. This shows how well "
                   "a class added later from one or five photos would be recognised.")
        table = pd.DataFrame(few["results"]).rename(columns=EPISODE_WORDS)
        if "± (95% confidence)" in table:
            table["± (95% confidence)"] = table["± (95% confidence)"].map(lambda v: f"± {v:.1%}")
        st.dataframe(table[[c for c in EPISODE_WORDS.values() if c in table]], hide_index=True, width="stretch",
                     key="few_shot_table",
                     column_config={"accuracy": st.column_config.NumberColumn(format="percent")})


# What a strategy's evaluation may add (the catalog's ``produces``) → its section on the Evaluate page.
SECTIONS = {"target_scores": _target_scores, "tasks": _tasks, "episodes": _episodes}


def strategy_results(ev: dict, strategy: str | None = None) -> None:
    """The sections for what the run's strategy produces (every known kind when ``strategy`` is not given or
    unknown); each draws only when the evaluation holds its figures."""
    found = catalog.CATALOG.get(strategy) if strategy else None
    kinds = found.produces if found else list(SECTIONS)
    for kind in kinds:
        if kind in SECTIONS:
            SECTIONS[kind](ev)


EPISODE_WORDS = {"n_way": "classes per episode", "k_shot": "photos per class", "accuracy": "accuracy",
                 "ci95": "± (95% confidence)", "pool": "photos drawn from", "images": "photos in the pool"}
