"""Step 5 · Predict: new images (uploaded, from the camera or a sample), the top classes, and where the model looked."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from views import _charts, _ui
from views._few_shot_add import add_class_panel
from tlcore import catalog

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]

st.title("5 · Predict")
st.caption("Give the model images it has never seen and check what it answers.")
_ui.flash()
store = _ui.store()


@st.cache_resource(max_entries=3, show_spinner=False)
def predictor(run_id: str, mtime: float):
    from tlcore.predict import Predictor

    return Predictor.from_run(store.run_dir(run_id)).warm_up()   # traced now: every prediction at the bare-call rate


def sample(run_id: str) -> tuple[str, bytes, str | None] | None:
    """The sample image chosen with "Try a sample image" for this run: (name, bytes, true class), or None."""
    chosen = st.session_state.get("predict_sample")
    if not chosen or chosen[0] != run_id:
        return None
    path = Path(chosen[1])
    try:
        return path.name, path.read_bytes(), chosen[2]
    except OSError:
        return None


def next_sample(run_id: str) -> None:
    """Button callback: the next image of the run's test split (another one on every click)."""
    from tlcore.predict import sample_images

    ok, images = _ui.call("Finding a sample image", sample_images, store.run_dir(run_id))
    if ok and images:
        turn = st.session_state.get("predict_sample_turn", -1) + 1
        st.session_state["predict_sample_turn"] = turn
        path, label = images[turn % len(images)]
        st.session_state["predict_sample"] = (run_id, path, label)


def inputs(model, run_id: str) -> tuple[list[tuple[str, bytes]], int]:
    """The images to classify (name, bytes) and how many classes to show."""
    cols = st.columns([2, 1])
    source = cols[0].radio("Images from", ["upload", "camera"], key="predict_source", horizontal=True,
                           format_func={"upload": "My files", "camera": "The camera"}.get,
                           help="Upload one or many images, or take a photo with this device's camera.")
    most = max(2, min(10, len(model.classes)))
    _ui.init("top_k", min(3, most))
    st.session_state["top_k"] = min(int(st.session_state["top_k"]), most)
    k = cols[1].slider("Classes to show", 1, most, key="top_k",
                       help="How many of the most likely classes to list for each image.")
    if source == "camera":
        photo = st.camera_input("Take a photo", key="camera_input",
                                help="Your browser asks for permission to use the camera. The photo stays on this "
                                     "server.")
        return ([("camera photo.jpg", photo.getvalue())] if photo is not None else []), k
    uploads = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key="predict_upload",
                               help="Drop one image to see it explained, or many to get a table you can download.")
    if uploads:
        return [(f.name, f.getvalue()) for f in uploads], k
    st.button("Try a sample image", key="predict_sample_button", on_click=next_sample, args=(run_id,),
              icon=":material/image:", help="Predicts one of this run's test images, which the model never saw "
                                            "in training. Click again for another one.")
    chosen = sample(run_id)
    if chosen is None:
        return [], k
    name, data, label = chosen
    st.caption(f"A test image{f' of **{_ui.esc(label)}**' if label else ''} that the model never saw in training.")
    return [(name, data)], k


def table(model, rows: list[dict], names: list[str], record) -> int:
    """The results as a table and a CSV download (columns named in words); returns the image to look at closer."""
    from tlcore.predict import download_name, table_columns

    frame = pd.DataFrame(rows)
    frame = frame.rename(columns=table_columns(model, list(frame.columns)))
    if len(rows) > 1:
        st.dataframe(frame, hide_index=True, width="stretch", key="predict_table",
                     column_config={c: st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")
                                    for c in frame.columns if c.endswith("confidence")})
    st.download_button("Download the table (CSV)", frame.to_csv(index=False).encode("utf-8"),
                       file_name=download_name(record.name, record.id, "predictions.csv"), mime="text/csv",
                       key="predict_csv_download", on_click="ignore",
                       help="One row per image: the predicted class and the top classes with their probabilities"
                            + (", and the answer for every label column." if model.multitask else "."))
    if len(rows) <= 1:
        return 0
    return st.selectbox("Look closer at", range(len(names)), key="predict_pick", format_func=lambda i: names[i],
                        help="Shows one image with its explanation.")


def answers(model, row: dict) -> None:
    """A multi-task run: the answer for every label column."""
    main = next(iter(model.tasks))
    lines = [(main, row["prediction"], row["confidence"])]
    lines += [(task, row.get(f"task:{task}"), row.get(f"task:{task}:confidence")) for task in list(model.tasks)[1:]]
    st.markdown("**One answer per label column**")
    cols = st.columns(len(lines))
    for col, (task, answer, p) in zip(cols, lines):
        col.metric(_ui.esc(task), str(answer or "–"), f"{p:.0%} sure" if p is not None else None,
                   delta_color="off", delta_arrow="off")


def verdict(row: dict) -> None:
    """The run's own doubt about this answer: "not sure", or "not one of my classes"."""
    if row.get("status") == "unknown":
        st.warning("This does not look like any of your classes: its features are far from every class the model "
                   "learned. If it should be one of them, add photos like it to that class and train again.",
                   icon=":material/help:")
    elif row.get("status") == "unsure":
        st.info(f"Not sure: {row['confidence']:.0%} is below the confidence at which this model was right 95% of "
                "the time on its validation images. Check this answer yourself.", icon=":material/help:")


def explain(model, row: dict, name: str, data: bytes, k: int) -> None:
    """One image: the top-k chart and the Grad-CAM heat map over the image."""
    from tlcore.explain import gradcam, overlay
    from tlcore.predict import to_rgb_array

    if model.multitask:
        answers(model, row)
    top = [(row[f"top{i + 1}"], row[f"top{i + 1}_probability"]) for i in range(k) if row.get(f"top{i + 1}")]
    left, right = st.columns(2)
    with left:
        title = f"Most likely: {next(iter(model.tasks))}" if model.multitask else "Most likely classes"
        st.plotly_chart(_charts.top_k(top, title), key="topk_chart", width="stretch")
        st.text(f"{name}: {top[0][0]} ({top[0][1]:.0%})")
        verdict(row)
    with right:
        show_cam = st.toggle("Show where the model looked (Grad-CAM)", value=True, key="gradcam_toggle",
                             help="Red areas influenced the prediction most. If the red is on the background, the "
                                  "model may have learned a shortcut.")
        with st.spinner("Explaining…"):
            ok, image = _ui.call("Reading the image", to_rgb_array, data, name)
            shown, captions = [image], ["Your image"]
            if ok and show_cam:
                cam_ok, heat = _ui.call("The heat map", gradcam, model.model, image)
                if cam_ok:
                    shown, captions = [image, overlay(image, heat, 0.45)], ["Your image", "Where the model looked"]
        if ok:
            st.image(shown, width=min(240, max(120, image.shape[1])), caption=captions)


record = _ui.pick_done_run("predict_run", "try")
if record is not None:
    if not _ui.draft().get("visited_predict"):
        _ui.save_draft(visited_predict=True)
    run_dir = store.run_dir(record.id)
    with st.spinner("Loading the model…"):
        loaded, model = _ui.call("Loading the model", predictor, record.id,
                                 (run_dir / "model.keras").stat().st_mtime)
    files, k = inputs(model, record.id) if loaded else ([], 3)
    if files:
        from tlcore.predict import predict_table

        with st.spinner("Predicting…"):
            ok, rows = _ui.call("Predicting", predict_table, model, files, k)
        if ok:
            _ui.mark_step("predict", record.id)          # the sidebar ticks Predict for this run
            names = [name for name, _ in files]
            pick = table(model, rows, names, record)
            if rows[pick].get("error"):
                _ui.show_error(rows[pick]["error"])
            else:
                explain(model, rows[pick], names[pick], files[pick][1], k)
    if loaded and catalog.produces(record.strategy, "prototypes") and record.owner == st.session_state["owner"]:
        add_class_panel(run_dir, model)
_ui.link("export", "Next: export the model", icon=":material/arrow_forward:")
