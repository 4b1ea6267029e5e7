"""The bundle: one zip with every format, labels.txt, config.json, the model card, the parity report and the
code to paste (``python -m tlcore export RUN --format all``, and the Export page's "Download everything").

Inside the zip, under one folder named after the run: the artifacts of :data:`tlcore.export.FORMATS` (the
SavedModel and the web page as folders), the side files, ``parity.json`` and ``parity.md`` (the matrix of
:func:`tlcore.parity.parity_matrix`, measured now unless a fresh one is there) and ``snippets/`` (one file per
:func:`tlcore.snippets.snippets` entry, using the bundle's own file names). Written atomically.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from .artifacts import load_labels, load_run_config
from .export import FORMATS, SIDE_FILES, export_all, model_image_size
from .export_formats import EXPORT_FORMATS
from .errors import ExportError
from .model_card import model_card, parity_lines
from .parity import parity_matrix
from .runs import atomic_write
from .snippets import snippets

BUNDLE = "bundle.zip"


def _add(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, f"{name}/{file.relative_to(path).as_posix()}")
    else:
        archive.write(path, name)


def export_bundle(run_dir: str | Path, out_dir: str | Path, folder: str = "model") -> Path:
    """Export every format into ``run_dir/exports``, check their parity, and write ``out_dir/bundle.zip``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    exports = run_dir / "exports"
    model_time = (run_dir / "model.keras").stat().st_mtime if (run_dir / "model.keras").is_file() else None
    stale = [f for f in FORMATS if model_time is None or not (exports / EXPORT_FORMATS[f].artifact).exists()
             or (exports / EXPORT_FORMATS[f].artifact).stat().st_mtime < model_time]
    if stale:
        export_all(run_dir, exports, stale)   # the formats already exported after training are reused
    paths = {f: exports / EXPORT_FORMATS[f].artifact for f in FORMATS}
    parity = parity_matrix(run_dir)
    labels = load_labels(run_dir)
    size = int(parity.get("image_size") or 0) or model_image_size(None, load_run_config(run_dir))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for fmt, path in paths.items():
            _add(archive, path, f"{folder}/{EXPORT_FORMATS[fmt].artifact}")
        for side in SIDE_FILES:   # the card written by export_all predates the parity: write it again below
            if side != "model_card.md":
                _add(archive, exports / side, f"{folder}/{side}")
        archive.writestr(f"{folder}/model_card.md", model_card(run_dir, image_size=size, labels=labels))
        archive.writestr(f"{folder}/parity.json", json.dumps(parity, indent=2))
        archive.writestr(f"{folder}/parity.md", "\n".join(["# Parity report", ""] + parity_lines(parity)) + "\n")
        for snippet in snippets(run_dir, size, labels):
            archive.writestr(f"{folder}/snippets/{snippet.filename}", snippet.code)
    target = out_dir / BUNDLE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(target, buffer.getvalue())
    except OSError as exc:
        raise ExportError(f"The bundle could not be written to {out_dir} ({exc.strerror or exc}): "
                          "check that the folder is writable and has room, and try again.") from exc
    return target

