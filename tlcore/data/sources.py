"""The import entry points: a zip, a folder, per-class uploads or a CSV of paths and labels, each into ``dest``.

Every unusable file is skipped and listed in the report; every usable file is kept.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import images, settings
from ..errors import DataError
from .archive import safe_suffix, unzip
from .build import build, check_shares, check_small, layout
from .csv_table import csv_entries
from .dataset import DataReport, Dataset, Entry, is_junk

# ---------------------------------------------------------------- public entry points

def load_data(source: str | Path, dest: str | Path, *, val_split: float = 0.15, test_split: float = 0.15,
              seed: int = 0, unlabelled: bool = False, label_columns: list[str] | None = None,
              image_root: str | Path | None = None, small_classes: str = "train") -> Dataset:
    """Import a .zip file, a folder of class folders, or a .csv of paths and labels into ``dest``. A class too
    small to split keeps all its images for training (``small_classes="train"``) or is left out (``"leave_out"``)."""
    src = Path(source)
    kw = dict(val_split=val_split, test_split=test_split, seed=seed, unlabelled=unlabelled,
              small_classes=small_classes)
    if src.is_dir():
        return from_folder(src, dest, **kw)
    if not src.is_file():
        raise DataError(f"{src.name or src} does not exist; check the path.")
    if src.suffix.lower() == ".zip":
        return from_zip(src, dest, **kw)
    if src.suffix.lower() in {".csv", ".tsv", ".txt"}:
        return from_csv(src, dest, image_root=image_root, label_columns=label_columns, **kw)
    raise DataError(f"{src.name} is not a folder, a .zip or a .csv file; choose one of those.")


def from_folder(folder: str | Path, dest: str | Path, **split_kw) -> Dataset:
    """Import class folders (optionally inside train/valid/test folders); files are used in place."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise DataError(f"{Path(folder).name} is not a folder; check the path.")
    with import_folder(dest, split_kw, root) as dest:
        report = DataReport()
        items = _walk(root, dest, report)
        return build(layout(items, report, split_kw.get("unlabelled", False)), dest, report, str(root), **split_kw)


def _walk(root: Path, dest: Path, report: DataReport) -> list[tuple[tuple[str, ...], Path]]:
    """Every non-junk regular file under ``root`` as (relative parts, path); links out of root are skipped."""
    prune = {(dest / "files").resolve(), (dest / "normalised").resolve()}
    items: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(root).parts
        keep = []
        for d in sorted(dirnames):
            if is_junk((d,)) or (here / d).resolve() in prune:
                continue
            if (here / d).is_symlink():
                report.skipped.append(("/".join(rel + (d,)), "a link to a folder (not followed)"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            parts, path = rel + (f,), here / f
            if is_junk(parts) or (f == "dataset.json" and here == dest):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                report.skipped.append(("/".join(parts), "a link to a file outside the folder (skipped)"))
            elif not path.is_file():
                report.skipped.append(("/".join(parts), "not a regular file"))
            else:
                items.append((parts, path))
    return items


def from_zip(zip_path: str | Path, dest: str | Path, **split_kw) -> Dataset:
    """Unpack a zip safely into ``dest/files`` (no traversal, links, bombs or nested zips), then import it."""
    zip_path = Path(zip_path)
    with import_folder(dest, split_kw, zip_path) as dest:
        report = DataReport()
        items = unzip(zip_path, dest / "files", report)
        return build(layout(items, report, split_kw.get("unlabelled", False), owned=True), dest, report,
                      zip_path.name, **split_kw)


def from_files(files: dict[str, list[tuple[str, bytes]]], dest: str | Path, **split_kw) -> Dataset:
    """Import per-class uploads: ``{class name: [(file name, bytes), ...]}``."""
    if any(not str(label).strip() for label in files):
        raise DataError("Every class needs a name; type a name for the unnamed class.")
    with import_folder(dest, split_kw) as dest:
        report, entries = DataReport(), []
        out = dest / "files"
        out.mkdir()
        for label, uploads in files.items():
            for fname, blob in uploads:
                origin = f"{label}/{fname}"
                if is_junk((Path(fname).name,)):
                    continue
                if fname.lower().endswith(".zip"):
                    report.skipped.append((origin, "a zip file: import it as a zip instead"))
                elif len(blob) > settings.MAX_FILE_BYTES:
                    report.skipped.append((origin, images.too_big_reason(len(blob))))
                else:
                    target = out / f"{len(entries) + 1:06d}{safe_suffix(fname)}"
                    target.write_bytes(blob)
                    entries.append(Entry(origin, target, label, owned=True))
        return build(entries, dest, report, "uploaded files", **split_kw)


def from_csv(csv_path: str | Path, dest: str | Path, image_root: str | Path | None = None,
             label_columns: list[str] | None = None, **split_kw) -> Dataset:
    """Import a CSV with a ``path`` column and a ``label`` column; other columns (or ``label_columns``)
    become extra tasks. Relative paths resolve against ``image_root`` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    with import_folder(dest, split_kw) as dest:
        entries, report, tasks = csv_entries(csv_path, image_root, label_columns, split_kw.get("unlabelled", False))
        return build(entries, dest, report, csv_path.name, tasks=tasks, **split_kw)


@contextmanager
def import_folder(dest: str | Path, split_kw: dict, source: Path | None = None) -> Iterator[Path]:
    """Check the shares, create ``dest``, clear what an earlier import wrote there, and clear it again on failure."""
    check_shares(split_kw.get("val_split", 0.15), split_kw.get("test_split", 0.15))
    check_small(split_kw.get("small_classes", "train"))
    dest = Path(dest).resolve()
    owned = [dest / "files", dest / "normalised"]
    if source is not None and any(source.resolve().is_relative_to(p) for p in owned):
        raise DataError(f"{source.name} lies inside the import folder {dest}; choose another destination.")
    dest.mkdir(parents=True, exist_ok=True)
    for path in owned + [dest / "dataset.json"]:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    try:
        yield dest
    except BaseException:
        for path in owned:
            shutil.rmtree(path, ignore_errors=True)
        raise
