"""Step 6 · Export: the trained model in every format, its labels, model card and config, and a parity check."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from views import _ui
from tlcore import results
from tlcore.export_formats import EXPORT_FORMATS

st.title("6 · Export")
st.caption("Download the model to use it in your own program, on a phone or on a small device.")
_ui.flash()
store = _ui.store()


def reader(path: Path):
    return lambda: path.read_bytes()


def show_parity(parity: dict) -> None:
    """The parity matrix: one row per format, the verdict, and the images each flagged format disagrees on."""
    if parity.get("note"):
        st.info(_ui.esc(parity["note"]))
        return
    rows = parity.get("rows") or []
    if not rows:
        st.info("This parity check is from an older version: run it again.")
        return
    ref = parity.get("reference_accuracy")
    (st.success if parity.get("ok") else st.warning)(
        ("Every exported file agrees with the studio's model." if parity.get("ok") else
         "Some exported files disagree with the studio's model (flagged below); prefer the others.")
        + f" Compared on {parity.get('n', 0)} {parity.get('split', 'test')} images"
        + (f"; the studio's model is right on {ref:.1%} of them." if ref is not None else "."))
    st.dataframe([{"file": r["file"], "runtime": r["runtime"], "same top class": r.get("agree"),
                   "largest probability difference": r.get("max_abs_diff"), "accuracy": r.get("accuracy"),
                   "verdict": r.get("error") or ("flagged" if r.get("flagged") else "agrees")} for r in rows],
                 hide_index=True, key="parity_table",
                 column_config={"same top class": st.column_config.NumberColumn(format="percent"),
                                "accuracy": st.column_config.NumberColumn(format="percent")})
    for r in rows:
        if r.get("flagged") and r.get("images"):
            st.caption(_ui.esc(f"{r['file']} picks another class than the studio on {r['disagree']} images: "
                               + ", ".join(r["images"])))
    st.caption("The web page runs the same model.onnx as the ONNX row, with onnxruntime-web in the browser.")


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
    searched = (run_dir / "best_config.json").is_file()     # the automatic search: replay its winner, no search
    cols[2].download_button("Download config.json", reader(run_dir / ("best_config.json" if searched else "config.json")),
                            file_name=named("config.json"),
                            mime="application/json", key="download_config", on_click="ignore",
                            help="Every setting of this run. It replays the run from the command line."
                                 + (" For the automatic search, it holds the settings the search chose, so a replay "
                                    "trains them without searching again." if searched else ""))
    st.caption("To train the same model again without the web app:")
    st.code(f"python -m tlcore train --config {named('config.json')} --data PATH_TO_YOUR_IMAGES", language="bash",
            wrap_lines=True)

    st.subheader("Everything in one zip")
    st.caption("Every format, labels.txt, the settings, the model card, the parity report and the code below.")
    from tlcore.bundle import BUNDLE

    bundle = out / BUNDLE
    if bundle.is_file() and bundle.stat().st_mtime >= model_time:
        st.download_button(f"Download {BUNDLE}", reader(bundle), file_name=named(BUNDLE), mime="application/zip",
                           key="download_bundle", on_click="ignore", help=f"{bundle.stat().st_size / 1e6:.1f} MB")
    elif st.button("Prepare the zip of everything", key="export_bundle_button",
                   help="Exports every format, checks that each answers like the studio, and zips them (a minute)."):
        with st.spinner("Exporting every format and checking them…"):
            with _ui.guarded("The bundle"):
                from tlcore.bundle import export_bundle

                export_bundle(run_dir, out)
                st.rerun()

    st.subheader("Use it in your app")
    from tlcore.snippets import snippets

    size = export.model_image_size(None, export.load_run_config(run_dir))
    parts = snippets(run_dir, size, name=named)
    st.caption(f"Code to paste, filled in with this model's files, its input size ({size}×{size}) and its classes.")
    for tab, part in zip(st.tabs([part.title for part in parts]), parts):
        tab.code(part.code, language=part.language, wrap_lines=True)

    st.subheader("Parity check")
    st.caption("Runs every exported file in its own runtime on the test images and checks that it answers like "
               "the model in the studio. A file that picks another class on more than 1% of the images (int8: 3%) "
               "is flagged.")
    parity = results.load_parity(run_dir)
    if st.button("Run the parity check", key="parity_button",
                 help="Exports the files that are missing and compares their answers (takes a minute)."):
        with st.spinner("Comparing the exported models…"):
            from tlcore.parity import parity_matrix

            ok, parity = _ui.call("The parity check", parity_matrix, run_dir)
    if parity:
        show_parity(parity)
