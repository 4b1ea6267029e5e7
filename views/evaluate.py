"""Step 4 · Evaluate: accuracy per class, the confusion matrix, the mistakes, an embedding map, and all runs."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from views import _charts, _compare, _ui
from views._eval_extras import strategy_results
from tlcore import results

st.title("4 · Evaluate")
st.caption("How well does the model do on test images it never saw during training?")
_ui.flash()
me = st.session_state["owner"]
store = _ui.store()


@st.cache_data(max_entries=8, show_spinner=False)
def embedding(run_id: str, method: str, stage: str, mtime: float) -> list[dict]:
    from tlcore.embed import run_embedding_map

    return run_embedding_map(store.run_dir(run_id), method=method, stage=stage)


@st.cache_data(max_entries=256, show_spinner=False)
def thumb(path: str):
    from tlcore.images import thumbnail

    return thumbnail(path, 160)


def scores(ev: dict, key: str = "") -> None:
    """The headline numbers, the per-class table and the confusion matrix of one evaluation (or one task's)."""
    classes = ev.get("classes") or []
    top = ev.get("top_k_accuracy") is not None and int(ev.get("top_k") or 0) < len(classes)
    ci = ev.get("accuracy_ci95")
    cols = st.columns(4 if top else 3)
    cols[0].metric("Accuracy", f"{ev['accuracy']:.1%}",
                   help="Share of test images classified correctly."
                        + (f" With 95% confidence the true figure lies between {ci[0]:.0%} and {ci[1]:.0%}."
                           if ci else ""))
    if top:
        cols[1].metric(f"Top-{ev['top_k']} accuracy", f"{ev['top_k_accuracy']:.1%}",
                       help=f"Share of test images whose true class is among the model's {ev['top_k']} best guesses.")
    cols[-2].metric("Macro F1", f"{ev['macro_f1']:.2f}",
                    help="The average of each class's F1 score (1.0 is perfect); small classes count as much as "
                         "big ones.")
    cols[-1].metric("Test images", ev["n"])
    if ev.get("uncertainty_note"):
        st.info(_ui.esc(ev["uncertainty_note"]), icon=":material/info:")
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Per class**")
        table = pd.DataFrame(ev["per_class"]).rename(columns={"support": "test images", "f1": "F1"})
        st.dataframe(table, hide_index=True, width="stretch", key="per_class_table" + key,
                     column_config={c: st.column_config.NumberColumn(format="%.2f")
                                    for c in ("precision", "recall", "F1")})
        st.caption("Precision: of the images the model put in this class, how many belong there. Recall: of "
                   "this class's images, how many the model found.")
    with right:
        st.plotly_chart(_charts.confusion(ev["confusion_matrix"], classes), key="confusion_chart" + key,
                        width="stretch")


def calibration(ev: dict, run_dir) -> None:
    """How far the model's confidence can be trusted: the reliability diagram and the ECE before and after."""
    if not ev.get("reliability"):
        return
    st.subheader("Can you trust its confidence?")
    left, right = st.columns([2, 3])
    with left:
        from tlcore.calibration import load_confidence

        note = load_confidence(run_dir).info.get("note")
        st.caption("When the model says 80%, it should be right about 80% of the time. Each bar is the test images "
                   "answered with that confidence; the dashed line is perfect calibration. "
                   + (_ui.esc(note) if note else "The model's confidence was calibrated on the validation images "
                                                 "(temperature scaling)."))
        cols = st.columns(2)
        cols[0].metric("Calibration error (ECE)", f"{ev['ece']:.3f}",
                       help="The average gap between confidence and accuracy, weighted by images (0 is perfect).")
        if ev.get("ece_uncalibrated") is not None:
            cols[1].metric("Before calibration", f"{ev['ece_uncalibrated']:.3f}",
                           help=f"The same model before its temperature ({ev.get('temperature', 1):.2f}) was applied.")
    with right:
        st.plotly_chart(_charts.reliability(ev["reliability"]), key="reliability_chart", width="stretch")


def mistakes(ev: dict) -> None:
    """The test images the model got wrong, most confident first."""
    wrong = ev.get("misclassified") or []
    st.subheader(f"Mistakes ({ev.get('misclassified_count', len(wrong))})")
    if not wrong:
        st.success("No test image was misclassified.")
        return
    st.caption("The test images the model got wrong, most confident mistakes first. Mislabelled or unusual "
               "images often show up here.")
    shown = [(w, thumb(w["path"])) for w in wrong[:24]]
    shown = [(w, img) for w, img in shown if img is not None]
    cols = st.columns(6)
    for i, (w, img) in enumerate(shown):
        with cols[i % 6]:
            st.image(img, width="stretch")
            st.caption(f"true: {_ui.esc(w['true'])}  \npredicted: {_ui.esc(w['predicted'])} "
                       f"({w['confidence']:.0%})")


record = _ui.pick_done_run("eval_run", "evaluate")
if record is not None:
    if not _ui.draft().get("visited_evaluate"):
        _ui.save_draft(visited_evaluate=True)
    run_dir = store.run_dir(record.id)
    ev = results.load_evaluation(run_dir)
    if ev is None or st.button("Evaluate again", key="evaluate_button",
                               help="Measures the model on the test images again (takes a few seconds)."):
        with st.spinner("Measuring the model on the test images…"):
            from tlcore.evaluate import evaluate_run

            ok, ev = _ui.call("Evaluating the model", evaluate_run, run_dir)
    tasks = ev.get("tasks") if ev else None
    multitask = isinstance(tasks, dict) and len(tasks) > 1
    if ev and ev.get("note") and not multitask:
        st.info(_ui.esc(ev["note"]))
    if multitask:
        st.caption(f"This model answers {len(tasks)} questions at once, one per label column: each tab shows "
                   "how well it answers one of them.")
        for i, (tab, (task, report)) in enumerate(zip(st.tabs([_ui.esc(t) for t in tasks]), tasks.items())):
            with tab:
                if report.get("note"):
                    st.info(_ui.esc(report["note"]))
                if report.get("n"):
                    scores(report, f"_{i}")
                    mistakes(report)
        strategy_results(ev, record.strategy)
    elif ev and ev.get("n"):
        scores(ev)
        strategy_results(ev, record.strategy)
        calibration(ev, run_dir)
        mistakes(ev)

    st.subheader("Embedding map")
    st.caption("The backbone turns every image into a long list of numbers (its features). This map squeezes them "
               "into two dimensions: images the backbone finds similar land close together. Well-separated colours "
               "mean the classes are easy to tell apart.")
    cols = st.columns([2, 2, 2])
    stage = cols[0].selectbox("Features", ["before", "after"], key="embedding_stage",
                              format_func={"before": "Backbone's (before training)",
                                           "after": "What the classifier reads (after training)"}.get,
                              help="Before: the pretrained backbone's features, which training did not change. "
                                   "After: the trained layer between the backbone and the answer. With domain "
                                   "adaptation, compare how far apart the source and target images lie in each.")
    method = cols[1].selectbox("Projection", ["pca", "tsne"], key="embedding_method",
                               format_func={"pca": "PCA (fast)", "tsne": "t-SNE (slower, clearer clusters)"}.get,
                               help="Two ways to flatten the features onto a page.")
    cols[2].markdown("&nbsp;")
    if cols[2].button("Draw the embedding map", key="embedding_button",
                      help="Passes up to 500 images through the model; takes a few seconds."):
        st.session_state["embedding_shown"] = (record.id, method, stage)
    if st.session_state.get("embedding_shown") == (record.id, method, stage):
        with st.spinner("Computing features…"):
            mtime = (run_dir / "model.keras").stat().st_mtime
            ok, points = _ui.call("The embedding map", embedding, record.id, method, stage, mtime)
        if ok and points:
            st.plotly_chart(_charts.embedding(points), key="embedding_chart", width="stretch")

    if record.owner == me:
        shared = st.toggle("Share this run with everyone on this server", value=record.shared, key="share_run",
                           help="For teachers: students then see this run in their lists (read-only).")
        if shared != record.shared:
            with _ui.guarded("Sharing the run"):
                store.set_shared(record.id, shared)
                st.rerun()

_compare.show(store, me)
_compare.cleaning(store, me)
_ui.link("predict", "Next: try the model on new images", icon=":material/arrow_forward:")
