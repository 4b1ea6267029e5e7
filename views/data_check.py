"""The Data page's "Check my data" panel: the check in the background with progress, a gallery per kind of
problem ranked by score, and fixes (keep, remove, move to the suggested class, merge two classes) that make a new
version of the dataset. The checking itself is :mod:`tlcore.audit`; this file only draws it."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from views import _ui
from tlcore import workspace as ws

SHOWN = 24                 # findings drawn per gallery, most suspect first
STAGES = {"waiting": "Waiting in the training queue", "features": "Reading the images",
          "copies": "Looking for copies and wrong labels", "done": "Finishing"}
KEEP, REMOVE = "Keep", "Remove"


@st.cache_data(max_entries=8, show_spinner=False)
def _paths(owner: str, dataset_id: str) -> dict[str, str]:
    return {s.name: s.path for s in ws.load_dataset(owner, dataset_id).samples}


@st.cache_data(max_entries=8, show_spinner=False)
def _splits(owner: str, dataset_id: str) -> dict[str, str]:
    words = {"train": "training", "val": "validation", "test": "test"}
    return {s.name: words.get(s.split or "train", s.split) for s in ws.load_dataset(owner, dataset_id).samples}


EXPLAIN = {
    "label_issues": "Images whose label the other images disagree with. The score (0 to 1) is how sure the check "
                    "is that the label is wrong; look at each picture before you move it.",
    "leaks": "The same picture, or nearly, in two of the training, validation and test images: the test score then "
             "measures memory, not skill. Remove one of each pair, or split again.",
    "duplicates": "Files with exactly the same bytes. One of each is enough.",
    "near_duplicates": "Pictures that look almost the same (resized, recompressed, slightly cropped or shifted). "
                       "Similarity 1.0 is the same picture; look before you remove one.",
    "outliers": "Images far from the rest of their class: a wrong file, a photo of something else, or simply an "
                "unusual shot. The score says how far, in the spread of that class; from 3.5 up is listed.",
    "class_names": "Classes whose names differ only by capital letters or spaces are probably one class.",
}


@st.cache_data(max_entries=2048, show_spinner=False)
def _thumb(path: str, name: str):
    from tlcore.images import thumbnail

    return thumbnail(path, 110, name)


def _image(col, paths: dict[str, str], name: str, caption: str) -> None:
    picture = _thumb(paths[name], name) if name in paths else None
    if picture is not None:
        col.image(picture, width=110)
    col.caption(_ui.esc(caption))


def versions_panel(me: str, current: ws.DatasetInfo) -> None:
    """The versions of this dataset, with what changed in each."""
    versions = ws.dataset_versions(me, current.id)
    if len(versions) < 2:
        return
    lines = [("**" if v.id == current.id else "") + _ui.esc(v.label) + (" (this one)**" if v.id == current.id else "")
             for v in versions]
    st.markdown("Versions: " + " · ".join(lines))


def small_classes(me: str, current: ws.DatasetInfo, info: dict) -> None:
    """The small-class rule's choice: a class trained with all its images can be left out instead."""
    for label, how in info.get("small_classes", {}).items():
        if how == "train only" and label in info["classes"] and len(info["classes"]) > 2:
            if st.button(f"Leave '{label}' out instead (new version)", key=f"leave_out_{label}",
                         icon=":material/remove_circle:"):
                _make(me, current, {"leave_out": [label]})


def _make(me: str, current: ws.DatasetInfo, fixes: dict) -> None:
    with _ui.guarded("Making the new version"):
        version = ws.new_version(me, current.id, fixes)
        kept = {"model_dataset": version.id} if _ui.draft().get("model_dataset") == current.id else {}
        _ui.save_draft(dataset_id=version.id, **kept)       # a new version keeps the model chosen for the old one
        st.session_state["flash"] = f"Made {version.name} ({version.changes}). Check it again, or train on it."
        st.rerun()


@st.fragment(run_every=1.0)
def _progress(dataset_id: str) -> None:
    """Polls the background check once a second, with its Stop button; reruns the page when it ends.

    Stop lives inside the fragment, as the Train page's does: a click reruns this fragment at once, even while
    the timer's own rerun is under way (a click on a button outside a ``run_every`` fragment can be lost then)."""
    status = ws.check_status(dataset_id)
    if status["state"] not in ws.CHECK_ACTIVE:
        st.rerun()
    words = STAGES.get(status["stage"] or status["state"], "Checking")
    if status["state"] == "waiting" and status["position"]:
        words += (f" (number {status['position']}): it starts when a slot is free and any run of yours has "
                  "finished, one job per person at a time")
    total = max(1, int(status["total"] or 0))
    fraction = min(1.0, int(status["done"] or 0) / total) if status["stage"] == "features" else 0.0
    st.progress(fraction, text=f"{words}…" + (f" {status['done']} of {status['total']} batches"
                                              if status["stage"] == "features" and status["total"] else ""))
    if st.button("Stop the check", key="stop_check_button", icon=":material/stop_circle:"):
        _ui.call("Stopping the check", ws.stop_check, dataset_id)
        if ws.check_status(dataset_id)["state"] not in ws.CHECK_ACTIVE:
            st.rerun()
        st.toast("Stopping the check after the current batch…")


def check_panel(me: str, current: ws.DatasetInfo, info: dict) -> None:
    """The "Check my data" section of the Data page."""
    st.subheader("Check my data")
    versions_panel(me, current)
    small_classes(me, current, info)
    status = ws.check_status(current.id)
    result = ws.load_check(me, current.id)
    st.caption("Finds likely wrong labels, copies of the same photo (also across the training and test images, "
               "which flatters the test score), images unlike the rest of their class, and class names that "
               "differ only by case or spaces. Fixes make a new version; this one stays as it is.")
    # Start acts in a callback, before the page is drawn: a st.rerun() from the middle of the page would end that
    # run before the thumbnails below are drawn again, and Streamlit would drop their files while the browser still
    # shows them (broken images). Stop is in the polling fragment, whose rerun of the page starts a whole new run.
    if status["state"] in ws.CHECK_ACTIVE:
        _progress(current.id)
        return
    if status["state"] == "stopped":
        st.info("The check was stopped. " + ("The result below is from the check before." if result else
                                             "Start it again when you are ready."))
    if status["state"] == "failed":
        _ui.show_error(status["error"])
    label = "Check my data" if result is None else "Check again"
    st.button(label, key="check_data_button", icon=":material/troubleshoot:",
              on_click=_ui.call, args=("Starting the check", ws.start_check, me, current.id))
    if result is not None:
        results(me, current, info, result)


def _tabs(result: dict) -> list[tuple[str, str]]:
    names = [("label_issues", "Likely wrong labels"), ("leaks", "Leaks between splits"),
             ("duplicates", "Duplicates"), ("near_duplicates", "Near-duplicates"), ("outliers", "Outliers"),
             ("class_names", "Class names")]
    return [(k, f"{title} ({len(result[k])})") for k, title in names]


def results(me: str, current: ws.DatasetInfo, info: dict, result: dict) -> None:
    """The galleries and the fixes chosen in them."""
    from tlcore.audit import summary_line

    st.success(_ui.esc(f"Checked {result['about']['images']} images: {summary_line(result)}."),
               icon=":material/fact_check:")
    paths = _paths(me, current.id)
    info = {**info, "splits": _splits(me, current.id)}
    fixes = {"remove": [], "relabel": {}, "merge": {}}
    tabs = st.tabs([title for _, title in _tabs(result)])
    for (kind, _), tab in zip(_tabs(result), tabs):
        with tab:
            st.caption(EXPLAIN[kind])
            GALLERIES[kind](result[kind], paths, fixes, info)
            if len(result[kind]) > SHOWN and kind != "class_names":
                st.caption(f"…and {len(result[kind]) - SHOWN} more, less likely ones.")
    apply_row(me, current, info, result, fixes)


def _choice(key: str, options: list[str]) -> str:
    return st.radio("Fix", options, key=key, horizontal=True, label_visibility="collapsed")


def label_gallery(items: list, paths: dict, fixes: dict, info: dict) -> None:
    if not items:
        st.write("No label looks wrong.")
    for i, item in enumerate(items[:SHOWN]):
        col_img, col_fix = st.columns([1, 3], vertical_alignment="center")
        _image(col_img, paths, item["path"], item["path"])
        col_fix.markdown(_ui.esc(f"Labelled '{item['given']}', looks like '{item['suggested']}' "
                                 f"(score {item['score']:.2f})"))
        move = f"Move to '{item['suggested']}'"
        with col_fix:
            picked = _choice(f"fix_label_{i}", [KEEP, REMOVE, move])
        if picked == REMOVE:
            fixes["remove"].append(item["path"])
        elif picked == move:
            fixes["relabel"][item["path"]] = item["suggested"]


def copies_gallery(items: list, paths: dict, fixes: dict, info: dict, kind: str = "copies") -> None:
    if not items:
        st.write("None found.")
    for i, item in enumerate(items[:SHOWN]):
        cols = st.columns([1, 1, 2], vertical_alignment="center")
        for col, name in zip(cols[:2], item["paths"][:2]):
            split = info.get("splits", {}).get(name)
            _image(col, paths, name, f"{name} ({split})" if kind == "leaks" and split else name)
        words = (f"in {' and '.join(item['splits'])}" if "splits" in item else
                 f"similarity {item['similarity']:.2f}")
        cols[2].markdown(_ui.esc(words))
        drop = (f"Remove the copy ({Path(item['paths'][-1]).name})" if kind == "duplicates" else
                f"Remove one ({Path(item['paths'][-1]).name})")
        with cols[2]:
            if _choice(f"fix_{kind}_{i}", [KEEP, drop]) == drop:
                fixes["remove"].extend(item["paths"][1:])


def outlier_gallery(items: list, paths: dict, fixes: dict, info: dict) -> None:
    if not items:
        st.write("No image stands out from its class.")
    for i, item in enumerate(items[:SHOWN]):
        col_img, col_fix = st.columns([1, 3], vertical_alignment="center")
        _image(col_img, paths, item["path"], item["path"])
        col_fix.markdown(_ui.esc(f"Unlike the rest of '{item['label']}' (score {item['score']:.1f})"))
        with col_fix:
            if _choice(f"fix_outlier_{i}", [KEEP, REMOVE]) == REMOVE:
                fixes["remove"].append(item["path"])


def names_gallery(items: list, paths: dict, fixes: dict, info: dict) -> None:
    for i, item in enumerate(items):
        a, b = item["names"][:2]
        st.markdown(_ui.esc(f"'{a}' and '{b}': {item['reason']}"))
        options = ["Keep both", f"Merge '{b}' into '{a}'", f"Merge '{a}' into '{b}'"]
        picked = _choice(f"fix_names_{i}", options)
        if picked == options[1]:
            fixes["merge"][b] = a
        elif picked == options[2]:
            fixes["merge"][a] = b
    classes = info["classes"]
    st.markdown("**Merge two classes**")
    cols = st.columns(2)
    source = cols[0].selectbox("Merge the class", ["(none)"] + classes, key="merge_from")
    target = cols[1].selectbox("into", classes, key="merge_into")
    if source != "(none)" and source != target:
        fixes["merge"][source] = target
    if not items:
        st.caption("No class names differ only by case or spaces.")


GALLERIES = {"label_issues": label_gallery, "duplicates": lambda *a: copies_gallery(*a, kind="duplicates"),
             "near_duplicates": lambda *a: copies_gallery(*a, kind="near"),
             "leaks": lambda *a: copies_gallery(*a, kind="leaks"), "outliers": outlier_gallery,
             "class_names": names_gallery}


def apply_row(me: str, current: ws.DatasetInfo, info: dict, result: dict, fixes: dict) -> None:
    """What the chosen fixes do, and the button that makes them a new version."""
    removed = sorted(set(fixes["remove"]))
    relabel = {k: v for k, v in fixes["relabel"].items() if k not in removed}
    words = [f"{len(removed)} to remove", f"{len(relabel)} to move"] + \
        [f"merge '{a}' into '{b}'" for a, b in fixes["merge"].items()]
    resplit = None
    if result["leaks"] and not info["own_splits"]:
        if st.checkbox("Split again after removing the copies", key="resplit_after_fix", value=bool(removed),
                       help="Copies in both the training and the test images flatter the test score; splitting "
                            "again with the same shares starts from a clean split."):
            total = max(1, info["n_images"])
            resplit = tuple(round(sum(r[k] for r in info["rows"]) / total, 2) for k in ("validation", "test"))
    st.caption(_ui.esc("Chosen: " + ", ".join(words) + (", split again" if resplit else "") + "."))
    if st.button("Make a new version with these fixes", key="apply_fixes_button", type="primary",
                 icon=":material/difference:", disabled=not (removed or relabel or fixes["merge"] or resplit)):
        _make(me, current, {"remove": removed, "relabel": relabel, "merge": dict(fixes["merge"]),
                            "resplit": resplit})
