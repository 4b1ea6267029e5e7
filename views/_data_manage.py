"""The Data page's "Rename, share or delete" panel for a dataset its owner is looking at."""
from __future__ import annotations

import streamlit as st

from views import _ui
from views._data_import import clear_notice
from tlcore import workspace as ws


def _rename(me: str, current: ws.DatasetInfo) -> None:
    if st.session_state.get("dataset_name_of") != current.id:      # another dataset: start from its own name
        st.session_state["dataset_name_of"] = current.id
        st.session_state["dataset_name"] = current.name
    cols = st.columns([3, 1], vertical_alignment="bottom")
    name = cols[0].text_input("Name", key="dataset_name", max_chars=120,
                              help="How this dataset is listed here and on the Train page. Runs trained on it "
                                   "keep working after a rename.")
    if cols[1].button("Rename", key="rename_button", icon=":material/edit:", disabled=name == current.name):
        with _ui.guarded("Renaming the dataset"):
            info = ws.rename_dataset(me, current.id, name)
            clear_notice()                                 # "Imported …" would show the old name
            st.session_state["flash"] = f"Renamed to “{info.name}”."
            st.rerun()


def _delete(me: str, current: ws.DatasetInfo) -> None:
    if st.session_state.get("confirm_delete") != current.id:
        if st.button("Delete this dataset…", key="delete_dataset", icon=":material/delete:",
                     help="Asks you to confirm first."):
            st.session_state["confirm_delete"] = current.id
            st.rerun()
        return
    users = ws.runs_using_dataset(current.id)
    kept = (f" {len(users)} {'run was' if len(users) == 1 else 'runs were'} trained on it; "
            f"{'it keeps' if len(users) == 1 else 'they keep'} working (predict, export, evaluate again), so the "
            "studio keeps the images for them, out of your list." if users else "")
    st.warning(_ui.esc(f"Delete “{current.name}” and its {current.n_images} images? This cannot be undone.{kept}"),
               icon=":material/delete:")
    cols = st.columns([1, 1, 3])
    if cols[0].button("Yes, delete it", key="delete_confirm", type="primary", icon=":material/delete_forever:"):
        st.session_state.pop("confirm_delete", None)
        with _ui.guarded("Deleting the dataset"):
            ws.delete_dataset(me, current.id)
            _ui.save_draft(dataset_id=None)            # the page then chooses the newest remaining dataset
            clear_notice()
            st.session_state["flash"] = f"Deleted “{current.name}”."
            st.rerun()
    if cols[1].button("Cancel", key="delete_cancel"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()


def manage_panel(me: str, current: ws.DatasetInfo) -> None:
    """Rename, share (for teachers) or delete, with a confirmation, the dataset on show."""
    with st.expander("Rename, share or delete this dataset", key="manage_panel", on_change="rerun",
                     icon=":material/settings:"):
        _rename(me, current)
        shared = st.toggle("Share with everyone on this server", value=current.shared, key="share_dataset",
                           help="For teachers: students see a shared dataset in their list and can train on it. "
                                "Only you can change or delete it.")
        if shared != current.shared:
            with _ui.guarded("Sharing the dataset"):
                ws.set_dataset_shared(me, current.id, shared)
                st.rerun()
        _delete(me, current)
