"""Importing image datasets safely: a zip, a folder, per-class uploads or a CSV of paths and labels.

Every unusable file is skipped and listed in the report; every usable file is kept. Anything written goes
under ``dest`` with generated names (``dest/files`` for unpacked or uploaded files, ``dest/normalised`` for
re-encoded images, ``dest/dataset.json``). No TensorFlow here.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import zipfile
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sklearn.model_selection import train_test_split

from tlcore import images, settings
from tlcore.errors import ConfigError, DataError, ImageError, TLError

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "valid": "val", "val": "val",
                "validation": "val", "test": "test", "testing": "test"}
_SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
_JUNK = {"__macosx", "thumbs.db", "desktop.ini"}
_WORKERS = max(2, min(4, os.cpu_count() or 2))   # PIL decodes outside the GIL; tiny files gain little
_PATH_COLUMNS = ("path", "filepath", "file_path", "file", "filename", "image", "image_path")
_LABEL_COLUMNS = ("label", "class", "category")


@dataclass
class Sample:
    """One usable image: ``path`` is a file TensorFlow can decode; ``name`` is where it came from."""

    path: str
    label: str | None
    split: str | None
    name: str
    labels: dict[str, str | None] = field(default_factory=dict)


@dataclass
class DataReport:
    """What was left out (file, reason) and what the user should know."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Dataset:
    """An imported dataset; ``root`` is its workspace folder (``root/dataset.json``)."""

    root: Path
    classes: list[str]
    samples: list[Sample]
    report: DataReport
    tasks: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    own_splits: bool = True          # the images came in train/valid/test folders (kept as given)

    def split(self, name: str) -> list[Sample]:
        """The samples of one split ("train", "val"/"valid", "test")."""
        name = _SPLIT_NAMES.get(name.lower(), name)
        return [s for s in self.samples if s.split == name]

    def counts(self, split: str | None = None) -> dict[str, int]:
        """Images per class (in ``classes`` order), for one split or all."""
        chosen = self.samples if split is None else self.split(split)
        tally = Counter(s.label for s in chosen)
        return {c: tally.get(c, 0) for c in self.classes}

    def label_index(self, sample: Sample) -> int:
        """The class index of a sample's label."""
        return self.classes.index(sample.label)

    def save(self) -> None:
        """Write ``root/dataset.json``; paths inside root are stored relative so the folder can move."""
        root = Path(self.root)

        def rel(path: str) -> str:
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                return str(path)

        doc = {"version": 1, "source": self.source, "classes": self.classes, "tasks": self.tasks,
               "own_splits": self.own_splits,
               "samples": [{"path": rel(s.path), "label": s.label, "split": s.split, "name": s.name,
                            "labels": s.labels} for s in self.samples],
               "report": {"skipped": [list(x) for x in self.report.skipped], "warnings": self.report.warnings}}
        tmp = root / "dataset.json.tmp"
        tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, root / "dataset.json")

    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        """Read a dataset saved by :meth:`save`."""
        root = Path(root).resolve()
        try:
            doc = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
            samples = [Sample(str(root / s["path"]) if not Path(s["path"]).is_absolute() else s["path"],
                              s["label"], s["split"], s["name"], dict(s.get("labels") or {})) for s in doc["samples"]]
            report = DataReport([tuple(x) for x in doc["report"]["skipped"]], list(doc["report"]["warnings"]))
            return cls(root, list(doc["classes"]), samples, report, dict(doc.get("tasks") or {}), doc.get("source", ""),
                       bool(doc.get("own_splits", True)))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{root} holds no readable dataset.json; import the data again.") from err


@dataclass
class _Entry:
    origin: str                     # what the user calls it: relative path, zip entry or CSV cell
    path: Path                      # the file on disk
    label: str | None = None
    split: str | None = None
    labels: dict[str, str | None] = field(default_factory=dict)
    owned: bool = False             # a copy inside dest that may be deleted


def _is_junk(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p.lower() in _JUNK for p in parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("s") else "s")


# ---------------------------------------------------------------- public entry points

def load_data(source: str | Path, dest: str | Path, *, val_split: float = 0.15, test_split: float = 0.15,
              seed: int = 0, unlabelled: bool = False, label_columns: list[str] | None = None,
              image_root: str | Path | None = None) -> Dataset:
    """Import a .zip file, a folder of class folders, or a .csv of paths and labels into ``dest``."""
    src = Path(source)
    kw = dict(val_split=val_split, test_split=test_split, seed=seed, unlabelled=unlabelled)
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
    with _workspace(dest, split_kw, root) as dest:
        report = DataReport()
        items = _walk(root, dest, report)
        return _build(_layout(items, report, split_kw.get("unlabelled", False)), dest, report, str(root), **split_kw)


def _walk(root: Path, dest: Path, report: DataReport) -> list[tuple[tuple[str, ...], Path]]:
    """Every non-junk regular file under ``root`` as (relative parts, path); links out of root are skipped."""
    prune = {(dest / "files").resolve(), (dest / "normalised").resolve()}
    items: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel = here.relative_to(root).parts
        keep = []
        for d in sorted(dirnames):
            if _is_junk((d,)) or (here / d).resolve() in prune:
                continue
            if (here / d).is_symlink():
                report.skipped.append(("/".join(rel + (d,)), "a link to a folder (not followed)"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            parts, path = rel + (f,), here / f
            if _is_junk(parts) or (f == "dataset.json" and here == dest):
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
    with _workspace(dest, split_kw, zip_path) as dest:
        report = DataReport()
        items = _unzip(zip_path, dest / "files", report)
        return _build(_layout(items, report, split_kw.get("unlabelled", False), owned=True), dest, report,
                      zip_path.name, **split_kw)


def from_files(files: dict[str, list[tuple[str, bytes]]], dest: str | Path, **split_kw) -> Dataset:
    """Import per-class uploads: ``{class name: [(file name, bytes), ...]}``."""
    if any(not str(label).strip() for label in files):
        raise DataError("Every class needs a name; type a name for the unnamed class.")
    with _workspace(dest, split_kw) as dest:
        report, entries = DataReport(), []
        out = dest / "files"
        out.mkdir()
        for label, uploads in files.items():
            for fname, blob in uploads:
                origin = f"{label}/{fname}"
                if _is_junk((Path(fname).name,)):
                    continue
                if fname.lower().endswith(".zip"):
                    report.skipped.append((origin, "a zip file: import it as a zip instead"))
                elif len(blob) > settings.MAX_FILE_BYTES:
                    report.skipped.append((origin, images.too_big_reason(len(blob))))
                else:
                    target = out / f"{len(entries) + 1:06d}{_safe_suffix(fname)}"
                    target.write_bytes(blob)
                    entries.append(_Entry(origin, target, label, owned=True))
        return _build(entries, dest, report, "uploaded files", **split_kw)


def from_csv(csv_path: str | Path, dest: str | Path, image_root: str | Path | None = None,
             label_columns: list[str] | None = None, **split_kw) -> Dataset:
    """Import a CSV with a ``path`` column and a ``label`` column; other columns (or ``label_columns``)
    become extra tasks. Relative paths resolve against ``image_root`` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    with _workspace(dest, split_kw) as dest:
        entries, report, tasks = _csv_entries(csv_path, image_root, label_columns, split_kw.get("unlabelled", False))
        return _build(entries, dest, report, csv_path.name, tasks=tasks, **split_kw)


def _csv_entries(csv_path: Path, image_root: str | Path | None, label_columns: list[str] | None,
                 unlabelled: bool) -> tuple[list[_Entry], DataReport, list[str]]:
    """The usable rows of a CSV as entries (and the skipped ones in the report), plus the extra task columns."""
    header, rows = _read_csv(csv_path)
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
            split = _SPLIT_NAMES.get(cells[split_col].strip().lower())
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
        entries.append(_Entry(origin, (base / cell.replace("\\", "/")), label or None, split, labels))
    if unlabelled:
        for e in entries:
            e.label, e.split = None, None
    return entries, report, extra


# ---------------------------------------------------------------- sources

def _check_shares(val: float, test: float) -> None:
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"The validation and test shares must be between 0 and 1 and add up to less than 1 "
                          f"(got {val} and {test}); choose smaller shares.")


@contextmanager
def _workspace(dest: str | Path, split_kw: dict, source: Path | None = None) -> Iterator[Path]:
    """Check the shares, create ``dest``, clear what an earlier import wrote there, and clear it again on failure."""
    _check_shares(split_kw.get("val_split", 0.15), split_kw.get("test_split", 0.15))
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


def _safe_parts(raw: str) -> tuple[str, ...] | None:
    """The path parts of a zip entry, or None when it could escape the destination."""
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _safe_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"


def _unzip(zip_path: Path, out: Path, report: DataReport) -> list[tuple[tuple[str, ...], Path]]:
    """Stream every acceptable entry to ``out`` under a generated name, enforcing the settings' caps."""
    name = zip_path.name
    try:
        archive = zipfile.ZipFile(zip_path)
        infos = archive.infolist()
    except Exception as err:  # noqa: BLE001 - zipfile raises many kinds for damaged archives
        raise DataError(f"{name} is not a valid zip file; create the zip again and upload it.") from err
    with archive:
        if len(infos) > settings.MAX_ZIP_FILES:
            raise DataError(f"{name} holds {len(infos)} files; the limit is {settings.MAX_ZIP_FILES} "
                            "(TLS_MAX_ZIP_FILES). Split it into smaller zips.")
        files = [i for i in infos if not i.filename.endswith(("/", "\\"))]   # (ZipInfo.is_dir fails on "")
        if not files:
            raise DataError(f"{name} is empty; put one folder of images per class in it and zip it again.")
        limit_mb = settings.MAX_ZIP_TOTAL_BYTES // 2**20
        if sum(i.file_size for i in files) > settings.MAX_ZIP_TOTAL_BYTES:
            raise DataError(f"{name} unpacks to more than {limit_mb} MB, the limit (TLS_MAX_ZIP_TOTAL_MB); "
                            "split it into smaller zips.")
        out.mkdir(parents=True, exist_ok=True)
        items, total = [], 0
        for index, info in enumerate(files):
            parts = _safe_parts(info.filename)
            if parts is None:
                report.skipped.append((info.filename, "unsafe path that points outside the zip (skipped)"))
                continue
            if _is_junk(parts):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                report.skipped.append((info.filename, "a symbolic link (skipped for safety)"))
                continue
            if parts[-1].lower().endswith(".zip"):
                report.skipped.append((info.filename, "a zip inside the zip: unpack it first"))
                continue
            if info.flag_bits & 0x1:
                report.skipped.append((info.filename, "encrypted: zip it again without a password"))
                continue
            if info.file_size > settings.MAX_FILE_BYTES:
                report.skipped.append((info.filename, images.too_big_reason(info.file_size)))
                continue
            _check_ratio(name, info.filename, info.file_size, info.compress_size)
            target = out / f"{index:06d}{_safe_suffix(parts[-1])}"
            written = _copy_entry(archive, info, target, name)
            if written is None:
                report.skipped.append((info.filename, "damaged inside the zip"))
                continue
            total += written
            if total > settings.MAX_ZIP_TOTAL_BYTES:
                raise DataError(f"{name} unpacks to more than {limit_mb} MB, the limit (TLS_MAX_ZIP_TOTAL_MB); "
                                "split it into smaller zips.")
            items.append((parts, target))
    return items


def _check_ratio(zip_name: str, entry: str, size: int, compressed: int) -> None:
    if size > settings.ZIP_RATIO_MIN_BYTES and size > settings.MAX_ZIP_RATIO * max(compressed, 1):
        raise DataError(f"{zip_name} looks like a zip bomb: '{entry}' expands more than {settings.MAX_ZIP_RATIO}× "
                        "(the MAX_ZIP_RATIO limit); zip the real images again.")


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_name: str) -> int | None:
    """Stream one entry to disk, never trusting the header's size; None when the entry is damaged."""
    written = 0
    try:
        with archive.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size or written > settings.MAX_FILE_BYTES:
                    raise ValueError("entry larger than its header says")
                _check_ratio(zip_name, info.filename, written, info.compress_size)
                dst.write(chunk)
    except TLError:
        target.unlink(missing_ok=True)
        raise
    except OSError as err:
        target.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise DataError("The disk is full while unpacking the zip; free some space and try again.") from err
        return None
    except Exception:  # noqa: BLE001 - CRC errors, bad compression, lying headers
        target.unlink(missing_ok=True)
        return None
    return written


def _read_csv(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a CSV with a BOM or not, and ',', ';', tab or '|' as delimiter."""
    try:
        if csv_path.stat().st_size > settings.MAX_CSV_BYTES:
            raise DataError(f"{csv_path.name} is larger than {settings.MAX_CSV_BYTES // 2**20} MB; split it.")
        raw = csv_path.read_bytes()
    except OSError as err:
        raise DataError(f"{csv_path.name} cannot be read; check that it exists.") from err
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    text = text.replace("\x00", "")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t|", key=first.count)
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(c.strip() for c in r)]
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


# ---------------------------------------------------------------- layout, decoding, splitting

def _layout(items: list[tuple[tuple[str, ...], Path]], report: DataReport, unlabelled: bool,
            owned: bool = False) -> list[_Entry]:
    """Classes (and own splits) from folder structure; unwraps up to five single wrapper folders."""
    def origin(parts: tuple[str, ...]) -> str:
        return "/".join(parts)

    if unlabelled:
        return [_Entry(origin(p), path, owned=owned) for p, path in items]
    start = 0
    for _ in range(5):
        tops = {p[start] for p, _ in items if len(p) > start + 1}
        loose = any(len(p) == start + 1 for p, _ in items)
        deeper = any(len(p) > start + 2 for p, _ in items)
        if len(tops) != 1 or loose or not deeper or _SPLIT_NAMES.get(next(iter(tops)).lower()):
            break
        start += 1
    own = any(len(p) > start + 2 and _SPLIT_NAMES.get(p[start].lower()) == "train" for p, _ in items)
    entries = []
    for parts, path in items:
        rest = parts[start:]
        split = _SPLIT_NAMES.get(rest[0].lower()) if own else None
        if own and (split is None or len(rest) < 3):
            reason = "outside the train/valid/test folders" if split is None else "not inside a class folder"
        elif not own and len(rest) < 2:
            reason = "not inside a class folder"
        else:
            entries.append(_Entry(origin(parts), path, rest[1] if own else rest[0], split, owned=owned))
            continue
        report.skipped.append((origin(parts), reason))
        if owned:
            path.unlink(missing_ok=True)
    return entries


def _decode(entries: list[_Entry], dest: Path, report: DataReport) -> list[tuple[_Entry, str, str]]:
    """Decode every entry once (in a small thread pool); re-encode odd ones under ``dest/normalised``."""
    out_dir = dest / "normalised"
    out_dir.mkdir(exist_ok=True)

    def work(job: tuple[int, _Entry]) -> tuple[_Entry, str | None, str]:
        index, entry = job
        try:
            data = images.read_bytes(entry.path, entry.origin)
            digest = hashlib.sha1(data).hexdigest()
            target = out_dir / f"{index:06d}.png"
            info = images.inspect(data, name=entry.origin, normalise_to=target)
        except ImageError as err:
            return entry, None, err.reason
        except OSError:
            return entry, None, "the file cannot be read"
        if info.needs_normalising and entry.owned:
            entry.path.unlink(missing_ok=True)
        return entry, str(target if info.needs_normalising else entry.path.resolve()), digest

    kept = []
    with ThreadPoolExecutor(_WORKERS) as pool:
        for entry, path, digest_or_reason in pool.map(work, enumerate(entries)):
            if path is None:
                report.skipped.append((entry.origin, digest_or_reason))
                if entry.owned:
                    entry.path.unlink(missing_ok=True)
            else:
                kept.append((entry, path, digest_or_reason))
    return kept


def _build(entries: list[_Entry], dest: Path, report: DataReport, source: str, *, val_split: float = 0.15,
           test_split: float = 0.15, seed: int = 0, unlabelled: bool = False,
           tasks: list[str] | None = None) -> Dataset:
    """Decode, check, split, warn and save."""
    kept = _decode(entries, dest, report)
    samples = [Sample(path, e.label, e.split, e.origin, dict(e.labels)) for e, path, _ in kept]
    if unlabelled:
        if not samples:
            raise DataError(f"No usable images were found in {source}; {_skipped_hint(report)}")
        _warn_duplicates(kept, report, unlabelled=True)
        dataset = Dataset(dest, [], samples, report, {}, source)
        dataset.save()
        return dataset
    classes = sorted({s.label for s in samples})
    own_splits = any(s.split is not None for s in samples)
    if len(classes) < 2:
        found = f" ({', '.join(repr(c) for c in classes)})" if classes else ""
        raise DataError(f"At least 2 classes are needed, but {_plural(len(classes), 'class')} "
                        f"{'was' if len(classes) == 1 else 'were'} found{found}; put each class's images "
                        f"in its own folder. {_skipped_hint(report)}".strip())
    _split(samples, classes, val_split, test_split, seed, report)
    _warn_duplicates(kept, report)
    tally = Counter(s.label for s in samples)
    big, small = max(classes, key=tally.get), min(classes, key=tally.get)
    if tally[big] > 3 * tally[small]:
        report.warnings.append(f"The classes are imbalanced: '{big}' has {tally[big]} images but '{small}' has "
                               f"{tally[small]}; add images of '{small}' or expect the model to favour '{big}'.")
    task_map = {t: sorted({s.labels[t] for s in samples if s.labels.get(t) is not None}) for t in tasks or []}
    dataset = Dataset(dest, classes, samples, report, task_map, source, own_splits)
    dataset.save()
    return dataset


def resplit(dataset: Dataset, val_split: float, test_split: float, seed: int = 0) -> Dataset:
    """Split a dataset's images again (stratified, seeded) and save it; refused for one that came with its own
    train/valid/test folders, whose split is the dataset author's."""
    if dataset.own_splits:
        raise DataError("This dataset came with its own train/valid/test folders, and that split is kept as "
                        "given; to split it differently, import the images without those folders.")
    if not dataset.classes:
        raise DataError("These images have no classes to split by.")
    _check_shares(val_split, test_split)
    for sample in dataset.samples:
        sample.split = None
    _split(dataset.samples, dataset.classes, val_split, test_split, seed, dataset.report)
    dataset.save()
    return dataset


def _skipped_hint(report: DataReport) -> str:
    if not report.skipped:
        return ""
    name, reason = report.skipped[0]
    return f"{_plural(len(report.skipped), 'file')} could not be used (for example '{name}': {reason})."


def _split(samples: list[Sample], classes: list[str], val_split: float, test_split: float, seed: int,
           report: DataReport) -> None:
    """Honour own split folders; carve missing splits from train per class (stratified, seeded)."""
    own = any(s.split is not None for s in samples)
    for s in samples:
        s.split = s.split or "train"
    present = {s.split for s in samples}
    carve = [(sp, share) for sp, share in (("val", val_split), ("test", test_split)) if share > 0 and sp not in present]
    needed = 1 + len(carve)
    for label in classes:
        pool = sorted((s for s in samples if s.label == label and s.split == "train"), key=lambda s: s.name)
        if len(pool) < needed:
            words = [_SPLIT_WORDS[sp] for sp in ["train"] + [c for c, _ in carve]]
            words = " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
            raise DataError(f"Class '{label}' has {_plural(len(pool), 'image')}"
                            f"{' for training' if own else ''} but needs at least {needed} (one each for {words}); "
                            f"add more images of '{label}' or lower the validation and test shares to 0.")
        sizes = [max(1, round(len(pool) * share)) for _, share in carve]
        while len(pool) - sum(sizes) < 1:
            sizes[sizes.index(max(sizes))] -= 1
        rest = pool
        for (split, _), size in zip(carve, sizes):
            rest, taken = train_test_split(rest, test_size=size, random_state=seed, shuffle=True)
            for s in taken:
                s.split = split
    if own:
        for split in sorted(present - {"train"}):
            lacking = [c for c in classes if not any(s.label == c and s.split == split for s in samples)]
            if lacking:
                report.warnings.append(f"The {_SPLIT_WORDS[split]} folder has no images of "
                                       f"{', '.join(repr(c) for c in lacking)}; add some so they can be measured.")


def _listing(items: list[str], limit: int = 3) -> str:
    """``'a', 'b' and 'c'``, or ``'a', 'b', 'c' and 4 more``: a few names the user can look for, then a count."""
    shown, rest = items[:limit], len(items) - limit
    if rest > 0:
        return ", ".join(shown) + f" and {rest} more"
    return " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else "".join(shown)


def _warn_duplicates(kept: list[tuple[_Entry, str, str]], report: DataReport, unlabelled: bool = False) -> None:
    """Warn about byte-identical images, naming the files so the user can find and remove the copies."""
    by_hash: dict[str, list[_Entry]] = defaultdict(list)
    for entry, _, digest in kept:
        by_hash[digest].append(entry)
    groups = [sorted(g, key=lambda e: e.origin) for g in by_hash.values() if len(g) > 1]
    groups.sort(key=lambda g: g[0].origin)
    cross = [g for g in groups if len({e.label for e in g}) > 1]
    for group in cross[:5]:
        where = " and ".join(f"'{e.origin}' (class '{e.label}')" for e in group[:3])
        report.warnings.append(f"The same image is in two classes: {where}; it leaks between splits and "
                               "confuses training, so keep only the right copy.")
    if len(cross) > 5:
        pairs = ["(" + ", ".join(f"'{e.origin}'" for e in g[:2]) + ")" for g in cross[5:]]
        report.warnings.append(f"{len(cross) - 5} more images are in two classes ({_listing(pairs)}); remove the "
                               "wrong copies.")
    within = [g for g in groups if g not in cross]
    if within:
        copies = ["(" + ", ".join(f"'{e.origin}'" for e in g[:3]) + (f" and {len(g) - 3} more" if len(g) > 3
                                                                  else "") + ")" for g in within]
        where, harm = (("among these images", "Each copy counts again") if unlabelled else
                       ("in the same class", "Copies can leak between splits and flatter the test score"))
        report.warnings.append(f"{_plural(len(within), 'image')} {'appears' if len(within) == 1 else 'appear'} "
                               f"more than once {where}: {_listing(copies)}. {harm}, so remove the duplicates.")
