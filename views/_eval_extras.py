"""Evaluate page: results only some strategies produce (domain adaptation, multi-task, few-shot)."""
from __future__ import annotations

import pandas as pd
import streamlit as st


def strategy_results(ev: dict) -> None:
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
    tasks = ev.get("tasks")
    if isinstance(tasks, dict) and len(tasks) > 1:
        st.subheader("Each label column")
        rows = [{"label column": name, "accuracy": r.get("accuracy"), "macro F1": r.get("macro_f1"),
                 "test images": r.get("n")} for name, r in tasks.items() if isinstance(r, dict)]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="tasks_table",
                     column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                    "macro F1": st.column_config.NumberColumn(format="%.2f")})
    few = ev.get("few_shot")
    if isinstance(few, dict) and few.get("results"):
        st.subheader("Few-shot episodes")
        st.caption("Each episode picks N classes and K example images per class, then classifies new images of "
                   "those classes. ci95 is the 95% confidence interval of the accuracy.")
        st.dataframe(pd.DataFrame(few["results"]), hide_index=True, width="stretch", key="few_shot_table")
