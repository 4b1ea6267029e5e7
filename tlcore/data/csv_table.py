"""CSV files of image paths and labels: reading them (any common encoding and delimiter) and their rows."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .. import settings
from ..errors import DataError
from .dataset import SPLIT_NAMES, DataReport, Entry

_PATH_COLUMNS = ("path", "filepath", "file_path", "file", "filename", "image", "image_path")
_LABEL_COLUMNS = ("label", "class", "category")


def parse_csv(raw: bytes) -> tuple[list[list[str]], str]:
    """The rows of CSV bytes (with a BOM or not, UTF-8 or else cp1252) and the delimiter found in the first
    non-empty line (',', ';', tab or '|'); ``csv.Error`` passes to the caller."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    text = text.replace("\x00", "")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t|", key=first.count)
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)), delimiter


def csv_entries(csv_path: Path, image_root: str | Path | None, label_columns: list[str] | None,
                unlabelled: bool) -> tuple[list[Entry], DataReport, list[str]]:
    """The usable rows of a CSV as entries (and the skipped ones in the report), plus the extra task columns."""
    header, rows = read_csv(csv_path)
    lower = {h.strip().lower(): h for h in header}
    path_col = next((lower[c] for c in _PATH_COLUMNS if c in lower), None)
    label_col = next((lower[c] for c in _LABEL_COLUMNS if c in lower), None)
    if label_col is None and label_columns:
        label_col = label_columns[0]
    if path_col is None or (label_col is None and not unlabelled):
        raise DataError(f"{csv_path.name} needs a 'path' column and a 'label' column; it has: "
                        f"{', '.join(header) or 'no columns'}. Rename the columns and try again.")
    split_col = lower.get("split")
    extra = list(label_columns) if label_columns is not None else list(header)
    extra = [c for c in extra if c not in {path_col, label_col, split_col}]
    missing = [c for c in extra + ([label_col] if label_col else []) if c not in header]
    if missing:
        raise DataError(f"{csv_path.name} has no column {', '.join(map(repr, missing))}; "
                        f"its columns are: {', '.join(header)}.")
    base = Path(image_root) if image_root is not None else csv_path.parent
    base_resolved = base.resolve()
    report, entries = DataReport(), []
    for number, row in enumerate(rows, start=2):
        cells = dict(zip(header, row))
        cell = (cells.get(path_col) or "").strip()
        origin = cell or f"row {number}"
        label = (cells.get(label_col) or "").strip() if label_col else ""
        split = None
        if split_col and (cells.get(split_col) or "").strip():
            split = SPLIT_NAMES.get(cells[split_col].strip().lower())
            if split is None:
                report.skipped.append((origin, f"unknown split '{cells[split_col].strip()}' (use train, val or test)"))
                continue
        reason = _check_csv_path(cell, base, base_resolved)
        if reason:
            report.skipped.append((origin, reason))
            continue
        if not label and not unlabelled:
            report.skipped.append((origin, "has no label"))
            continue
        labels = {c: ((cells.get(c) or "").strip() or None) for c in extra}
        entries.append(Entry(origin, (base / cell.replace("\\", "/")), label or None, split, labels))
    if unlabelled:
        for e in entries:
            e.label, e.split = None, None
    return entries, report, extra


def read_csv(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a CSV with a BOM or not, and ',', ';', tab or '|' as delimiter."""
    try:
        if csv_path.stat().st_size > settings.MAX_CSV_BYTES:
            raise DataError(f"{csv_path.name} is larger than {settings.MAX_CSV_BYTES // 2**20} MB; split it.")
        raw = csv_path.read_bytes()
    except OSError as err:
        raise DataError(f"{csv_path.name} cannot be read; check that it exists.") from err
    try:
        rows = [r for r in parse_csv(raw)[0] if any(c.strip() for c in r)]
    except csv.Error as err:
        raise DataError(f"{csv_path.name} cannot be read as a CSV file; save it again as CSV (UTF-8).") from err
    if not rows:
        raise DataError(f"{csv_path.name} is empty; it needs a header row with 'path' and 'label' columns.")
    header = [h.strip() for h in rows[0]]
    return header, rows[1:]


def _check_csv_path(cell: str, base: Path, base_resolved: Path) -> str | None:
    """Why a CSV path cannot be used, or None."""
    if not cell:
        return "has no path"
    if "://" in cell:
        return "a web address: download the images and list their file paths"
    try:
        resolved = (base / cell.replace("\\", "/")).resolve()
        if not resolved.is_relative_to(base_resolved):
            return "outside the image folder (refused)"
        if not resolved.is_file():
            return "file not found"
    except (OSError, ValueError, RuntimeError):
        return "not a valid file path"
    return None
