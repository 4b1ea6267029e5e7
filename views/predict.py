"""Step 5 · Predict: new images (uploaded or from the camera), the top classes, and where the model looked."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from views import _charts, _ui

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]

st.title("5 · Predict")
st.caption("Give the model images it has never seen and check what it answers.")
_ui.flash()
store = _ui.store()


@st.cache_resource(max_entries=3, show_spinner=False)
def predictor(run_id: str, mtime: float):
    from tlcore.predict import Predictor

    return Predictor.from_run(store.run_dir(run_id))


def inputs(model) -> tuple[list[tuple[str, bytes]], int]:
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
    return [(f.name, f.getvalue()) for f in uploads or []], k


def table(rows: list[dict], names: list[str]) -> int:
    """The results of many images as a table and a CSV download; returns the image to look at closer."""
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, width="stretch", key="predict_table",
                 column_config={"confidence": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                              format="percent")})
    st.download_button("Download the table (CSV)", frame.to_csv(index=False).encode("utf-8"),
                       file_name="predictions.csv", mime="text/csv", key="predict_csv_download", on_click="ignore",
                       help="One row per image: the predicted class and the top classes with their probabilities.")
    return st.selectbox("Look closer at", range(len(names)), key="predict_pick", format_func=lambda i: names[i],
                        help="Shows one image with its explanation.")


def explain(model, row: dict, name: str, data: bytes, k: int) -> None:
    """One image: the top-k chart and the Grad-CAM heat map over the image."""
    from tlcore.explain import gradcam, overlay
    from tlcore.predict import to_rgb_array

    top = [(row[f"top{i + 1}"], row[f"top{i + 1}_probability"]) for i in range(k) if row.get(f"top{i + 1}")]
    left, right = st.columns(2)
    with left:
        st.plotly_chart(_charts.top_k(top), key="topk_chart", width="stretch")
        st.text(f"{name}: {top[0][0]} ({top[0][1]:.0%})")
    with right:
        show_cam = st.toggle("Show where the model looked (Grad-CAM)", value=True, key="gradcam_toggle",
                             help="Red areas influenced the prediction most. If the red is on the background, the "
                                  "model may have learned a shortcut.")
        with st.spinner("Explaining…"):
            ok, image = _ui.call("Reading the image", to_rgb_array, data, name)
            if ok and show_cam:
                cam_ok, heat = _ui.call("The heat map", gradcam, model.model, image)
                image = overlay(image, heat, 0.45) if cam_ok else image
        if ok:
            st.image(image, width=min(480, max(160, image.shape[1])),
                     caption="Grad-CAM heat map over the image" if show_cam else "The image")


record = _ui.pick_done_run("predict_run", "try")
if record is not None:
    if not _ui.draft().get("visited_predict"):
        _ui.save_draft(visited_predict=True)
    run_dir = store.run_dir(record.id)
    with st.spinner("Loading the model…"):
        ok, model = _ui.call("Loading the model", predictor, record.id, (run_dir / "model.keras").stat().st_mtime)
    files, k = inputs(model) if ok else ([], 3)
    if files:
        from tlcore.predict import predict_table

        with st.spinner("Predicting…"):
            ok, rows = _ui.call("Predicting", predict_table, model, files, k)
        if ok:
            names = [name for name, _ in files]
            pick = table(rows, names) if len(files) > 1 else 0
            if rows[pick].get("error"):
                _ui.show_error(rows[pick]["error"])
            else:
                explain(model, rows[pick], names[pick], files[pick][1], k)
_ui.link("export", "Next: export the model", icon=":material/arrow_forward:")
