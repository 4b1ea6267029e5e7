"""Step 6 · Export: the trained model in every format, its labels, model card and config, and a parity check."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from views import _ui
from tlcore import results
from tlcore.export_formats import EXPORT_FORMATS, parity_formats

st.title("6 · Export")
st.caption("Download the model to use it in your own program, on a phone or on a small device.")
_ui.flash()
store = _ui.store()


def reader(path: Path):
    return lambda: path.read_bytes()


record = _ui.pick_done_run("export_run", "export")
if record is not None:
    if not _ui.draft().get("visited_export"):
        _ui.save_draft(visited_export=True)
    with st.spinner("Loading the export tools (only the first time)…"):
        from tlcore import export

    run_dir = store.run_dir(record.id)
    out = run_dir / "exports"

    def named(filename: str) -> str:
        """The run's name and short id in front, so downloads of several runs don't collide."""
        return export.download_name(record.name, record.id, filename)
    model_time = (run_dir / "model.keras").stat().st_mtime

    def ready(fmt: str) -> Path | None:
        path = out / EXPORT_FORMATS[fmt].download
        return path if path.is_file() and path.stat().st_mtime >= model_time else None

    def build(formats: list[str]) -> None:
        with st.spinner("Exporting… (TFLite conversion takes a few seconds per format)"):
            with _ui.guarded("The export"):
                export.export_all(run_dir, out, formats)
                for entry in (EXPORT_FORMATS[f] for f in formats if EXPORT_FORMATS[f].folder):
                    export.zip_dir(out / entry.artifact, out / entry.download)
                st.rerun()

    st.subheader("The model")
    missing = [f for f in EXPORT_FORMATS if ready(f) is None]
    if missing and st.button("Prepare all formats", key="export_all_button", type="primary",
                             help="Builds every format at once (about half a minute); they are kept for next time."):
        build(missing)
    for fmt, entry in EXPORT_FORMATS.items():
        title, filename, mime, text = entry.title, entry.download, entry.mime, entry.text
        cols = st.columns([2, 3, 2])
        cols[0].markdown(f"**{title}**")
        cols[1].caption(text)
        path = ready(fmt)
        if path is not None:
            cols[2].download_button(f"Download {filename}", reader(path), file_name=named(filename), mime=mime,
                                    key=f"download_{fmt}", on_click="ignore",
                                    help=f"{path.stat().st_size / 1e6:.1f} MB")
        elif cols[2].button(f"Prepare {filename}", key=f"export_{fmt}_button",
                            help="Builds this format now (a few seconds) and keeps it for next time."):
            build([fmt])

    st.subheader("Labels, model card and settings")
    cols = st.columns(3)
    cols[0].download_button("Download labels.txt", lambda: "\n".join(export.load_labels(run_dir)) + "\n",
                            file_name=named("labels.txt"), mime="text/plain", key="download_labels", on_click="ignore",
                            help="The class names, one per line, in the order of the model's outputs.")
    cols[1].download_button("Download model_card.md", lambda: export.model_card(run_dir),
                            file_name=named("model_card.md"),
                            mime="text/markdown", key="download_model_card", on_click="ignore",
                            help="What the model is for, how it was trained, how well it does, and its limits.")
    cols[2].download_button("Download config.json", reader(run_dir / "config.json"),
                            file_name=named("config.json"),
                            mime="application/json", key="download_config", on_click="ignore",
                            help="Every setting of this run. It replays the run from the command line.")
    st.caption("To train the same model again without the web app:")
    st.code(f"python -m tlcore train --config {named('config.json')} --data PATH_TO_YOUR_IMAGES", language="bash",
            wrap_lines=True)

    st.subheader("Use it in Python")
    st.code(
        "import keras\nimport numpy as np\nfrom PIL import Image\n\n"
        f'model = keras.saving.load_model("{named("model.keras")}")\n'
        f'labels = open("{named("labels.txt")}", encoding="utf-8").read().splitlines()\n\n'
        'image = np.asarray(Image.open("my_photo.jpg").convert("RGB"), dtype="float32")  # any size, pixels 0-255\n'
        "probabilities = model.predict(image[None])[0]\n"
        "best = int(np.argmax(probabilities))\n"
        'print(labels[best], f"{probabilities[best]:.0%}")\n', language="python", wrap_lines=True)

    st.subheader("Parity check")
    st.caption("Checks that the downloaded files answer exactly like the model in the studio, on up to 50 test "
               "images.")
    parity = results.load_parity(run_dir)
    if st.button("Run the parity check", key="parity_button",
                 help="Exports the .keras and .tflite files if needed and compares their answers (takes a few seconds)."):
        with st.spinner("Comparing the exported models…"):
            ok, parity = _ui.call("The parity check", export.parity_check, run_dir)
    if parity:
        if parity.get("note"):
            st.info(_ui.esc(parity["note"]))
        else:
            verdict = st.success if parity.get("ok") else st.warning
            verdict(("The exports agree with the studio's model." if parity.get("ok") else
                     "The exports disagree with the studio's model on some images; prefer the .keras file.")
                    + f" Compared on {parity.get('n', 0)} images.")
            rows = [{"file": name, "same top class": parity.get(f"{key}_agree"),
                     "largest probability difference": parity.get(f"{key}_max_abs_diff")}
                    for name, key in ((entry.artifact, entry.key) for entry in parity_formats())
                    if parity.get(f"{key}_agree") is not None]
            st.dataframe(rows, hide_index=True, key="parity_table",
                         column_config={"same top class": st.column_config.NumberColumn(format="percent")})
