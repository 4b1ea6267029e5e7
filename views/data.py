"""Step 1 · Data: import images, choose the dataset to train on, and look at it before training."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from views import _charts, _ui
from views._data_import import clear_notice, import_panel, show_notice
from views._data_manage import manage_panel
from views.data_check import check_panel
from tlcore import settings, workspace as ws

st.title("1 · Data")
st.caption("Your images, one class per folder. The studio checks every file, skips what it cannot use and tells "
           "you why, and splits the images into training, validation and test sets.")
_ui.flash()
me = st.session_state["owner"]


@st.cache_data(max_entries=16, show_spinner=False)
def summary(owner: str, dataset_id: str) -> dict:
    return ws.dataset_summary(ws.load_dataset(owner, dataset_id))


@st.cache_data(max_entries=16, show_spinner=False)
def thumbs(owner: str, dataset_id: str) -> dict:
    return ws.thumbnails(ws.load_dataset(owner, dataset_id), per_class=6, size=120)


@st.cache_data(max_entries=32, show_spinner=False)
def augmented(owner: str, dataset_id: str, label: str, augment: tuple, seed: int) -> list:
    from tlcore.preview import augment_preview

    dataset = ws.load_dataset(owner, dataset_id)
    sample = next(s for s in dataset.samples if s.label == label)
    return augment_preview(sample.path, n=8, augment=dict(augment), seed=seed, name=sample.name)


def _chosen() -> None:
    """The user picked another dataset: the draft follows (before the page is drawn again)."""
    _ui.save_draft(dataset_id=st.session_state["dataset_select"])
    clear_notice()


datasets = ws.list_datasets(me)
ids = [d.id for d in datasets]
current = _ui.current_dataset()
if datasets and (current is None or current.id not in ids):
    _ui.save_draft(dataset_id=ids[0])                   # none chosen yet, or it was deleted: the newest
    current = _ui.current_dataset()
shown = _ui.dataset_label(current, me) if current is not None else None
if current is not None and (st.session_state.get("dataset_select") != current.id
                            or st.session_state.get("dataset_select_shown") != shown):
    # The draft decides what the picker shows. An import (or a delete, or a rename) changed it after the picker
    # was drawn; only a value set here, before the widget, reaches the browser, which would otherwise keep the
    # old choice (or its old name) and send it back with the next click.
    st.session_state["dataset_select"] = current.id
st.session_state["dataset_select_shown"] = shown
with st.container(border=True):
    st.subheader("Your datasets")
    if not datasets:
        st.info("You have no datasets yet: import some images below, or try the sample from the Home page.")
    else:
        st.selectbox("Dataset to train on", ids, key="dataset_select", on_change=_chosen,
                     format_func=lambda i: _ui.dataset_label(datasets[ids.index(i)], me),
                     help="The dataset the next training run uses. Your imports stay here until you delete them"
                          + (f" or leave them unused for {settings.RETENTION_DAYS} days."
                             if settings.RETENTION_DAYS > 0 else "."))

_ui.init("import_panel", not datasets)                  # open for a first import; then it stays as the user left it
with st.expander("Import images", key="import_panel", on_change="rerun", icon=":material/upload:"):
    import_panel()
show_notice()               # the last import's result: outside the panel, right under the uploader just used


def resplit_panel(current: ws.DatasetInfo, info: dict) -> None:
    """Change the validation and test shares of an imported dataset."""
    with st.expander("Change the split"):
        if info["own_splits"]:
            st.caption("This dataset came with its own train/valid/test folders, and the studio keeps that split "
                       "as given.")
            return
        total = max(1, info["n_images"])
        shares = [sum(r[k] for r in info["rows"]) / total for k in ("validation", "test")]
        cols = st.columns(2)
        val = cols[0].slider("Validation share", 0.0, 0.4, round(shares[0] * 20) / 20, 0.05,
                             key=f"resplit_val_{current.id}",
                             help="Images held back during training to check for over-fitting after every epoch.")
        test = cols[1].slider("Test share", 0.0, 0.4, round(shares[1] * 20) / 20, 0.05,
                              key=f"resplit_test_{current.id}",
                              help="Images kept aside until the end to measure the final accuracy honestly.")
        st.caption("Each class is split in the same proportions, the same way every time. Runs you already "
                   "trained keep the split they were trained on.")
        if st.button("Split again", key="resplit_button", icon=":material/call_split:"):
            with _ui.guarded("Splitting the dataset"):
                ws.resplit_dataset(me, current.id, val, test)
                summary.clear()                       # the counts changed; thumbnails and previews did not
                st.session_state["flash"] = (f"Split again: {val:.0%} validation and {test:.0%} test images "
                                             "in every class.")
                st.rerun()


def show(current: ws.DatasetInfo, info: dict) -> None:
    """The chosen dataset: counts, report, warnings, thumbnails, augmentation preview, share / delete."""
    st.subheader("The dataset")
    st.text(f"{current.name}: {info['n_images']} images in {len(info['classes'])} classes")
    for warning in info["warnings"]:
        st.warning(_ui.esc(warning), icon=":material/warning:")
    if info["skipped"]:
        n = len(info["skipped"])
        st.warning(f"{n} file{'' if n == 1 else 's'} could not be used and {'was' if n == 1 else 'were'} skipped; "
                   "the report below says why.",
                   icon=":material/folder_off:")

    st.plotly_chart(_charts.class_counts(info["rows"]), key="class_counts_chart", width="stretch")
    # Below the chart, as wide as its columns: squeezed beside the chart, it cut its last column ("tota").
    table = pd.DataFrame(info["rows"], columns=["class", "train", "validation", "test", "total"])
    st.dataframe(table, hide_index=True, width="content", key="class_counts_table")
    if info["tasks"]:
        st.caption("Extra label columns (for multi-task training): " + _ui.esc(", ".join(info["tasks"])))

    if current.owner == me:
        resplit_panel(current, info)
    with st.expander(f"Bad-file report ({len(info['skipped'])} skipped)", expanded=bool(info["skipped"])):
        if info["skipped"]:
            st.dataframe(pd.DataFrame(info["skipped"], columns=["file", "reason"]), hide_index=True, width="stretch",
                         key="bad_files_table")
        else:
            st.write("Every file could be used.")

    with st.container(border=True):
        check_panel(me, current, info)

    st.subheader("A few images of each class")
    ok, pictures = _ui.call("Showing the images", thumbs, me, current.id)
    if ok:
        for label, items in list(pictures.items())[:30]:
            total = next((r["total"] for r in info["rows"] if r["class"] == label), 0)
            st.text(f"{label}  ({total} image{'' if total == 1 else 's'})")
            if items:
                st.image([a for _, a in items], caption=[_ui.esc(Path(n).name) for n, _ in items], width=120)
        if len(pictures) > 30:
            st.caption(f"…and {len(pictures) - 30} more classes.")

    st.subheader("Augmentation preview")
    st.caption("Augmentation shows the model slightly changed copies of each training image (flipped, rotated, "
               "zoomed, brighter or darker), so it learns what matters rather than memorising photos. Here is one "
               "image as training would see it on 8 different epochs.")
    cols = st.columns([2, 1, 1])
    label = cols[0].selectbox("Image from class", info["classes"], key="augment_class",
                              help="Which class to take the example image from.")
    seed = cols[1].number_input("Variation", 0, 999, 0, key="augment_seed",
                                help="Change it to see other random versions of the same image.")
    augment = (_ui.draft().get("train") or {}).get("augment") or {}
    augment_key = tuple(sorted((k, v) for k, v in augment.items() if k != "enabled"))
    if cols[2].button("Show augmentation preview", key="augment_preview_button",
                      help="Takes a few seconds the first time: it loads the augmentation layers."):
        st.session_state["augment_shown"] = (current.id, label, seed)
    if st.session_state.get("augment_shown") == (current.id, label, seed):
        with st.spinner("Augmenting…"):
            ok, images = _ui.call("The augmentation preview", augmented, me, current.id, label, augment_key, int(seed))
        if ok:
            for col, image in zip(st.columns(len(images)), images):
                col.image(image, width="stretch")

    if current.owner == me:
        manage_panel(me, current)


if current is not None:
    ok, info = _ui.call("Reading the dataset", summary, me, current.id)
    if ok:
        show(current, info)

_ui.link("model", "Next: choose a model", icon=":material/arrow_forward:")
