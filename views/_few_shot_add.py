"""Predict page, few-shot runs: add a class from one to five photos, without retraining."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from views import _ui

MAX_PHOTOS = 5
IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]


def add_class_panel(run_dir: Path, model) -> None:
    """A class name, 1-5 photos and "Add this class": the model then answers with the new class too."""
    st.subheader("Add a class")
    st.caption(f"A few-shot model recognises a new class from one to {MAX_PHOTOS} photos, with no retraining: it "
               "remembers the average look of the photos (the class's prototype). Give an existing class's name to "
               f"add photos to it. The model knows {len(model.classes)} classes now: "
               + ", ".join(_ui.esc(c) for c in model.classes) + ".")
    with st.form("add_class_form", clear_on_submit=True, border=True):
        name = st.text_input("Name of the class", key="add_class_name", max_chars=80,
                             placeholder="for example: robin",
                             help="How the model should call the new class.")
        photos = st.file_uploader(f"One to {MAX_PHOTOS} photos of it", type=IMAGE_TYPES, accept_multiple_files=True,
                                  key="add_class_photos",
                                  help="Clear photos of the class alone work best; photos unlike the others "
                                       "pull its prototype away.")
        submitted = st.form_submit_button("Add this class", key="add_class_button", icon=":material/add:")
    if not submitted:
        return
    if not name.strip():
        _ui.show_error("The new class needs a name: type one above, then add the photos again.")
        return
    if not photos or len(photos) > MAX_PHOTOS:
        _ui.show_error(f"Give one to {MAX_PHOTOS} photos of '{name.strip()}' ({len(photos or [])} were given), "
                       "then click Add this class again.")
        return
    from tlcore.strategies.few_shot import add_class

    with st.spinner(f"Adding '{name.strip()}'…"):
        ok, classes = _ui.call("Adding the class", add_class, run_dir, name, [p.getvalue() for p in photos])
    if ok:
        st.session_state["flash"] = (f"The model now knows {len(classes)} classes, '{name.strip()}' included: try "
                                     "it on a photo. The Evaluate page still shows the scores of the old classes "
                                     "until you evaluate again.")
        st.rerun()
