"""Rename or delete a run, offered where runs are picked. Deleting asks for confirmation first; a run that is
waiting or training is refused with a sentence (tlcore.runs.RunStore.delete)."""
from __future__ import annotations

import streamlit as st

from views import _ui
from tlcore.runs import MAX_RUN_NAME


def _name_key(record, key: str) -> str:
    return f"{key}_name_{record.id[-12:]}"


def _rename(record, key: str) -> None:
    with _ui.guarded("Renaming the run"):
        name = _ui.store().rename(record.id, st.session_state[_name_key(record, key)], owner=st.session_state["owner"])
        st.session_state["flash"] = f"The run is now called '{name}'."
        st.session_state.pop(_name_key(record, key), None)
        st.rerun()


def _delete(record, key: str) -> None:
    with _ui.guarded("Deleting the run"):
        _ui.store().delete(record.id, owner=st.session_state["owner"])
        st.session_state.pop(f"{key}_confirm", None)
        if st.session_state.get("run_id") == record.id or st.query_params.get("run") == record.id:
            _ui.set_current_run(None)
        st.session_state["flash"] = f"The run '{record.name}' and its model were deleted."
        st.rerun()


def manage(record, key: str) -> None:
    """An expander under a run picker: rename the run, or delete it (after a confirmation)."""
    me = st.session_state["owner"]
    with st.expander("Rename or delete this run", icon=":material/edit:", key=f"{key}_panel"):
        if record.owner != me:
            st.caption("This run was shared with you: only the person who trained it can rename or delete it.")
            return
        _ui.init(_name_key(record, key), record.name or "")
        cols = st.columns([3, 1], vertical_alignment="bottom")
        cols[0].text_input("Name", key=_name_key(record, key), max_chars=MAX_RUN_NAME,
                           help="A few words that say what this run tried, e.g. 'birds, fine-tune, augmented'.")
        if cols[1].button("Rename", key=f"{key}_rename", icon=":material/edit:"):
            _rename(record, key)
        confirm = f"{key}_confirm"
        if st.session_state.get(confirm) != record.id:
            if st.button("Delete this run…", key=f"{key}_delete", icon=":material/delete:",
                         help="Asks you to confirm first."):
                st.session_state[confirm] = record.id
                st.rerun()
            return
        st.warning(f"Delete the run '{_ui.esc(record.name)}' with its model, evaluation and exports? This cannot "
                   "be undone.", icon=":material/delete:")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key=f"{key}_delete_yes", type="primary", icon=":material/delete_forever:"):
            _delete(record, key)
        if no.button("Cancel", key=f"{key}_delete_no"):
            st.session_state.pop(confirm, None)
            st.rerun()
