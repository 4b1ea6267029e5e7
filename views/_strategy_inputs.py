"""Inputs that only some strategies need, as their catalog entries say: target images, label columns and their
weights, and the options the catalog shows on the Train page. A strategy with no needs and no such options gets
no extra inputs."""
from __future__ import annotations

import streamlit as st

from views import _ui
from tlcore import catalog
from tlcore import workspace as ws


def target_label(info: ws.DatasetInfo, me: str) -> str:
    """A target dataset for the picker: its labels, when it has any, only score the model."""
    labels = (f"{info.n_classes} classes, labels used only for scoring" if info.n_classes else "no labels")
    text = f"{info.name} · {info.n_images} images · {labels}"
    return text + (" · shared with you" if info.owner != me else "")


def _target(me: str, dataset: ws.DatasetInfo, saved: dict) -> str | None:
    others = [d for d in ws.list_datasets(me) if d.id != dataset.id]
    ids = [d.id for d in others]
    _ui.init("target_dataset", ws.dataset_id_of(saved.get("target_data")))
    if "target_pending" in st.session_state:           # just uploaded: chosen before the picker is drawn
        st.session_state["target_dataset"] = st.session_state.pop("target_pending")
    if st.session_state["target_dataset"] not in ids:
        st.session_state["target_dataset"] = None
    target = st.selectbox("Target images (unlabelled)", [None] + ids, key="target_dataset",
                          format_func=lambda i: "(choose a dataset)" if i is None else
                          target_label(others[ids.index(i)], me),
                          help="Images from where the model will be used (another camera, lighting or style). "
                               "Their labels, if they have any, are only used to score, never to train.")
    up = st.file_uploader("…or upload target images (a zip, any folders)", type=["zip"], key="target_upload",
                          help="A zip of images from the new domain; they need no labels.")
    if up is not None and st.session_state.get("target_uploaded") != up.file_id:
        up.seek(0)
        with st.spinner("Importing the target images…"):
            ok, info = _ui.call("Importing the target images", ws.import_zip, me, up, up.name, unlabelled=True,
                                name=f"Target images ({up.name})", val_split=0.0, test_split=0.0,
                                spool_dir=_ui.session_tmp())
        if ok:
            st.session_state["target_uploaded"] = up.file_id
            st.session_state["target_pending"] = info.id
            warnings = ws.dataset_summary(ws.load_dataset(me, info.id))["warnings"]   # e.g. copies, named
            st.session_state["flash"] = " ".join([f"Imported {info.n_images} target images."] + warnings)
            st.rerun()
    if target is None:
        st.caption("Choose or upload the target images before starting.")
    else:
        st.caption("Training never sees the target's labels. When the target images have labels (class folders), "
                   "they are used only to score the model on them: after the run here, and on the Evaluate page.")
    return ws.DATASET_PREFIX + target if target else None


def _tasks(me: str, dataset: ws.DatasetInfo, saved: dict) -> tuple[list[str], dict]:
    ok, summary = _ui.call("Reading the dataset", lambda: ws.dataset_summary(ws.load_dataset(me, dataset.id)))
    tasks = list((summary or {}).get("tasks") or {})
    if not tasks:
        st.warning("Multi-task learning needs a CSV with extra label columns (for example 'species' and 'colour'); "
                   "import one on the Data page with the CSV + images tab.", icon=":material/warning:")
        return [], {}
    st.caption("Besides the main label, this dataset has these label columns; each gets its own head. A weight "
               "says how much a column counts in training (0 ignores it).")
    weights = dict((saved.get("options") or {}).get("loss_weights") or {})
    cols = st.columns(min(4, len(tasks)))
    out = {}
    for i, task in enumerate(tasks):
        key = f"loss_weight_{i}"
        _ui.init(key, float(weights.get(task, 1.0)))
        out[task] = cols[i % len(cols)].number_input(f"Weight of column {i + 1}", 0.0, 10.0, step=0.1, key=key,
                                                     help="How much this label column counts in the loss.")
        cols[i % len(cols)].caption(_ui.esc(task))
    return tasks, {"loss_weights": out}


def _option_widget(info, saved_options: dict):
    """One option the catalog marks for the Train page, drawn from its schema (a toggle for a yes/no option)."""
    key, label = info.page
    _ui.init(key, type(info.default)(saved_options.get(info.name, info.default)))
    if isinstance(info.default, bool):
        return st.toggle(label, key=key, help=info.help)
    if isinstance(info.default, (int, float)):
        return st.number_input(label, key=key, help=info.help)
    if info.choices:
        if st.session_state[key] not in info.choices:
            st.session_state[key] = info.default
        return st.radio(label, list(info.choices), key=key, help=info.help, horizontal=True,
                        format_func=lambda c: OPTION_WORDS.get(c, c))
    return st.text_input(label, key=key, help=info.help)


OPTION_WORDS = {"dann": "Domain discriminator (DANN): small gaps", "self_training": "Self-training: large gaps"}


# The inputs a strategy's needs ask for (catalog.NEEDS): each returns the RunConfig fields it fills.
def _need_target(me: str, dataset: ws.DatasetInfo, saved: dict) -> dict:
    return {"target_data": _target(me, dataset, saved)}


def _need_label_columns(me: str, dataset: ws.DatasetInfo, saved: dict) -> dict:
    columns, options = _tasks(me, dataset, saved)
    return {"label_columns": columns, "options": options}


NEED_INPUTS = {"target_images": _need_target, "label_columns": _need_label_columns}


def strategy_inputs(strategy: str, me: str, dataset: ws.DatasetInfo, saved: dict) -> dict:
    """The extra RunConfig fields (target_data, label_columns, options) the chosen strategy needs, drawn from its
    catalog entry: an input per need, then a widget per option the catalog shows on this page."""
    extra: dict = {"target_data": None, "label_columns": [], "options": {}}
    found = catalog.CATALOG.get(strategy)
    if found is None:
        return extra
    for need in found.needs:
        got = NEED_INPUTS[need](me, dataset, saved)
        extra["options"].update(got.pop("options", {}))
        extra.update(got)
    saved_options = saved.get("options") or {}
    for info in found.options.schema():
        if info.page:
            extra["options"][info.name] = _option_widget(info, saved_options)
    return extra
