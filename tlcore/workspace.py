"""The per-owner dataset store and the session glue the web pages need (no streamlit, no TensorFlow).

Datasets are imported with :mod:`tlcore.data` into ``workspace/datasets/<unguessable id>/`` (the folder the
runner reads for ``data="dataset:<id>"``). A small SQLite index (``workspace/datasets.db``) records each
dataset's owner and an explicit ``shared`` flag; nobody sees another owner's datasets unless they are shared.

Owners are strings: ``"user:<email>"`` when the server has logins, else ``"u:<token>"`` where the token is an
unguessable value kept in the page's URL. A per-owner *draft* (``workspace/drafts/<hash>.json``) keeps the
current dataset and the model/training settings, so a refresh or a restart loses nothing.

:mod:`tlcore.data` (which imports scikit-learn, about 2.5 s) is imported lazily, so listing stays fast.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from . import settings
from .errors import DataError, ModelFileError, TLError
from .runs import RunStore, RunState, atomic_write

log = logging.getLogger("tlcore.workspace")

DATASET_PREFIX = "dataset:"
SAMPLE_NAME = "Synthetic shapes (generated on this machine)"
PUBLIC_SAMPLE_NAME = "Cats and dogs (public sample, 3,000 photos)"
PUBLIC_SAMPLE_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
PUBLIC_SAMPLE_MAX_BYTES = 200 * 1024 * 1024
_ID_RE = re.compile(r"^[0-9a-f]{24}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_RETIRED = "deleted:"      # owner prefix of a deleted dataset whose images finished runs still read
_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
  created REAL NOT NULL, last_used REAL NOT NULL, shared INTEGER DEFAULT 0,
  n_classes INTEGER DEFAULT 0, n_images INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS datasets_owner ON datasets(owner);
"""


# ------------------------------------------------------------------------------------------------ owners
def new_owner_token() -> str:
    """An unguessable token for an anonymous owner (kept in the page's URL as ``?u=``)."""
    return secrets.token_urlsafe(18)


def is_owner_token(value: object) -> bool:
    return isinstance(value, str) and bool(_TOKEN_RE.match(value))


def owner_id(*, email: str | None = None, token: str | None = None) -> str:
    """The owner string stored with datasets and runs: the login email when there is one, else the token."""
    if email:
        return "user:" + email.strip().lower()
    if not is_owner_token(token):
        raise TLError("This browser's workspace link is not valid; open the studio's address again.")
    return "u:" + str(token)


def _owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


# ------------------------------------------------------------------------------------------------ datasets
@dataclass
class DatasetInfo:
    id: str
    owner: str
    name: str
    kind: str            # zip | files | csv | server | sample | public
    created: float
    last_used: float
    shared: bool
    n_classes: int
    n_images: int

    @property
    def ref(self) -> str:
        """The value of ``RunConfig.data`` that names this dataset."""
        return DATASET_PREFIX + self.id

    def visible_to(self, owner: str) -> bool:
        return self.owner == owner or self.shared

    def as_dict(self) -> dict:
        return asdict(self)


def workspace_path(workspace: str | os.PathLike | None = None) -> Path:
    """The workspace folder: ``workspace`` or the configured one."""
    return Path(workspace) if workspace is not None else settings.workspace_dir()


def datasets_dir(workspace: str | os.PathLike | None = None) -> Path:
    path = workspace_path(workspace) / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _db(workspace: str | os.PathLike | None) -> sqlite3.Connection:
    ws = workspace_path(workspace)
    ws.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(ws / "datasets.db", timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.executescript(_SCHEMA)
    return db


def query(workspace, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    """Run one SQL statement on the datasets index."""
    db = _db(workspace)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _info(row: sqlite3.Row) -> DatasetInfo:
    return DatasetInfo(row["id"], row["owner"], row["name"], row["kind"], row["created"], row["last_used"],
                       bool(row["shared"]), row["n_classes"], row["n_images"])


def dataset_id_of(ref: str | None) -> str | None:
    """The dataset id in ``"dataset:<id>"`` (or a bare id); None for anything else."""
    if not ref:
        return None
    value = ref[len(DATASET_PREFIX):] if ref.startswith(DATASET_PREFIX) else ref
    return value if _ID_RE.match(value) else None


def list_datasets(owner: str, *, include_shared: bool = True, workspace=None) -> list[DatasetInfo]:
    """This owner's datasets (and, unless told otherwise, datasets others shared), newest first."""
    rows = query(workspace, "SELECT * FROM datasets WHERE owner = ? OR (shared = 1 AND ?) ORDER BY created DESC",
                  (owner, int(include_shared)))
    return [_info(r) for r in rows if (datasets_dir(workspace) / r["id"] / "dataset.json").is_file()]


def get_dataset(owner: str, dataset_id: str, *, workspace=None) -> DatasetInfo:
    """The dataset's record; DataError when it does not exist or belongs to someone else and is not shared."""
    rows = query(workspace, "SELECT * FROM datasets WHERE id = ?", (dataset_id_of(dataset_id) or "",))
    info = _info(rows[0]) if rows else None
    if info is None or not info.visible_to(owner) or not (datasets_dir(workspace) / info.id / "dataset.json").is_file():
        raise DataError("That dataset is not available (it was deleted, or it belongs to someone else): "
                        "choose another one or import your images again.")
    return info


def dataset_name(dataset_id: str | None, *, workspace=None) -> str | None:
    """The current name of an imported dataset (also one its owner deleted while runs still use it), or None."""
    rows = query(workspace, "SELECT name FROM datasets WHERE id = ?", (dataset_id_of(dataset_id) or "",))
    return rows[0]["name"] if rows else None


def dataset_root(owner: str, dataset_id: str, *, workspace=None) -> Path:
    return datasets_dir(workspace) / get_dataset(owner, dataset_id, workspace=workspace).id


def load_dataset(owner: str, dataset_id: str, *, workspace=None):
    """The :class:`tlcore.data.Dataset` of a dataset this owner may see."""
    from .data import Dataset

    info = get_dataset(owner, dataset_id, workspace=workspace)
    query(workspace, "UPDATE datasets SET last_used = ? WHERE id = ?", (time.time(), info.id))
    return Dataset.load(datasets_dir(workspace) / info.id)


def rename_dataset(owner: str, dataset_id: str, name: str, *, workspace=None) -> DatasetInfo:
    """Give one of this owner's datasets a new name (runs name it by id, so they keep working)."""
    info = _owned(owner, dataset_id, workspace)
    name = " ".join(str(name or "").split())
    if not name:
        raise DataError("A dataset needs a name: type one, then rename it.")
    if len(name) > 120:
        raise DataError(f"That name is {len(name)} characters long; use at most 120.")
    query(workspace, "UPDATE datasets SET name = ? WHERE id = ?", (name, info.id))
    return get_dataset(owner, info.id, workspace=workspace)


def set_dataset_shared(owner: str, dataset_id: str, shared: bool, *, workspace=None) -> None:
    """Share a dataset with everyone on this server (a teacher's choice), or stop sharing it."""
    info = _owned(owner, dataset_id, workspace)
    query(workspace, "UPDATE datasets SET shared = ? WHERE id = ?", (int(bool(shared)), info.id))


def delete_dataset(owner: str, dataset_id: str, *, workspace=None) -> int:
    """Delete one of this owner's datasets; refused while a queued or running run still needs it.

    Finished runs read their images from the dataset's folder (to evaluate again, export or map them), so while
    any run trained on it exists the dataset only leaves every list: its images stay, under a row nobody owns,
    until retention removes them. Returns how many runs keep using the images (0: everything was removed)."""
    info = _owned(owner, dataset_id, workspace)
    if info.id in datasets_in_use(workspace):
        raise DataError("This dataset is used by a run that is waiting or training; stop that run first, "
                        "then delete the dataset.")
    users = runs_using_dataset(info.id, workspace=workspace)
    if users:
        query(workspace, "UPDATE datasets SET owner = ?, shared = 0, last_used = ? WHERE id = ?",
              (_RETIRED + info.owner, time.time(), info.id))
    else:
        query(workspace, "DELETE FROM datasets WHERE id = ?", (info.id,))
        shutil.rmtree(datasets_dir(workspace) / info.id, ignore_errors=True)
    for row in query(workspace, "SELECT id FROM datasets WHERE owner = ?", (_RETIRED + info.owner,)):
        if row["id"] != info.id and not runs_using_dataset(row["id"], workspace=workspace):
            query(workspace, "DELETE FROM datasets WHERE id = ?", (row["id"],))      # its last run went too
            shutil.rmtree(datasets_dir(workspace) / row["id"], ignore_errors=True)
    return len(users)


def runs_using_dataset(dataset_id: str, *, workspace=None) -> list[str]:
    """Ids of the runs (any state, any owner) trained on this dataset or adapted to it as their target."""
    store = RunStore(workspace_path(workspace))
    users = []
    for record in store.list():
        try:
            config = store.config(record.id)
        except TLError:
            continue
        if dataset_id in (dataset_id_of(config.data or ""), dataset_id_of(config.target_data or "")):
            users.append(record.id)
    return users


def resplit_dataset(owner: str, dataset_id: str, val_split: float, test_split: float, seed: int = 0, *,
                    workspace=None) -> DatasetInfo:
    """Change the validation and test shares of one of this owner's datasets (not while a run needs it). Finished
    runs keep the split they trained on: each run folder holds its own copy of the data list."""
    from .data import resplit

    info = _owned(owner, dataset_id, workspace)
    if info.id in datasets_in_use(workspace):
        raise DataError("A run that is waiting or training uses this dataset; let it finish (or stop it), then "
                        "change the split.")
    resplit(load_dataset(owner, info.id, workspace=workspace), **_split_kw(val_split, test_split, seed))
    return get_dataset(owner, info.id, workspace=workspace)


def _owned(owner: str, dataset_id: str, workspace) -> DatasetInfo:
    info = get_dataset(owner, dataset_id, workspace=workspace)
    if info.owner != owner:
        raise DataError("Only the person who imported this dataset can change or delete it.")
    return info


def datasets_in_use(workspace) -> set[str]:
    """Ids of the datasets a waiting or training run still needs."""
    store = RunStore(workspace_path(workspace))
    used = set()
    for record in store.list():
        if record.state in (RunState.QUEUED, RunState.RUNNING):
            try:
                config = store.config(record.id)
            except TLError:
                continue
            for ref in (config.data, config.target_data):
                if dataset_id_of(ref or ""):
                    used.add(dataset_id_of(ref))
    return used


# ------------------------------------------------------------------------------------------------ importing
def _split_kw(val_split: float, test_split: float, seed: int) -> dict:
    return {"val_split": float(val_split), "test_split": float(test_split), "seed": int(seed)}


def _safe_name(filename: str, default: str) -> str:
    """A file name with no folders and no odd characters, for files we write ourselves."""
    name = Path(str(filename).replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name, flags=re.UNICODE).strip(" .")[:100]
    return name or default


def _import(owner: str, name: str, kind: str, build: Callable[[Path], Any], workspace) -> DatasetInfo:
    """Import into a fresh unguessable folder; on any failure the folder is removed and a TLError is raised."""
    owner_id_check(owner)
    dataset_id = secrets.token_hex(12)
    dest = datasets_dir(workspace) / dataset_id
    dest.mkdir(parents=True)
    try:
        dataset = build(dest)
    except TLError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except MemoryError:
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError("The server ran out of memory while importing; import fewer or smaller images.") from None
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        log.exception("import failed")
        raise DataError(f"The images could not be saved on the server ({exc.strerror or type(exc).__name__}); "
                        "free some disk space or ask the operator, then try again.") from exc
    except Exception as exc:  # noqa: BLE001 - the user gets a sentence, the log gets the traceback
        shutil.rmtree(dest, ignore_errors=True)
        log.exception("import failed")
        raise DataError(f"The data could not be imported (unexpected {type(exc).__name__}); check the files "
                        "and try again.") from exc
    now = time.time()
    clean = " ".join(str(name).split())[:120] or "My images"
    query(workspace, "INSERT INTO datasets (id, owner, name, kind, created, last_used, shared, n_classes, n_images) "
           "VALUES (?,?,?,?,?,?,0,?,?)", (dataset_id, owner, clean, kind, now, now, len(dataset.classes),
                                          len(dataset.samples)))
    return get_dataset(owner, dataset_id, workspace=workspace)


def owner_id_check(owner: str) -> None:
    if not isinstance(owner, str) or (not owner.startswith(("u:", "user:")) and owner != "local"):
        raise TLError("This browser's workspace link is not valid; open the studio's address again.")


def _write_upload(data: bytes | BinaryIO, target: Path, limit: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as out:
        if isinstance(data, (bytes, bytearray, memoryview)):
            written = len(data)
            if written <= limit:
                out.write(data)
        else:
            while chunk := data.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    break
                out.write(chunk)
    if written > limit:
        target.unlink(missing_ok=True)
        raise DataError(f"{target.name} is larger than {limit // 2**20} MB, the upload limit; split it into smaller "
                        "zips or ask the operator to raise TLS_MAX_UPLOAD_MB.")


def import_zip(owner: str, data: bytes | BinaryIO, filename: str, *, name: str | None = None, val_split=0.15,
               test_split=0.15, seed: int = 0, unlabelled: bool = False, spool_dir: Path | None = None,
               workspace=None) -> DatasetInfo:
    """Import an uploaded zip of class folders (or, with ``unlabelled``, any images: e.g. target-domain data).
    The zip is spooled to disk in ``spool_dir`` (the browser session's temporary folder) and removed after."""
    from .data import from_zip

    zip_name = _safe_name(filename, "upload.zip")
    if not zip_name.lower().endswith(".zip"):
        zip_name += ".zip"

    def build(dest: Path):
        spool = Path(spool_dir or dest) / f"_upload-{secrets.token_hex(4)}"
        _write_upload(data, spool / zip_name, settings.MAX_UPLOAD_MB * 2**20)
        try:
            return from_zip(spool / zip_name, dest, unlabelled=unlabelled, **_split_kw(val_split, test_split, seed))
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    return _import(owner, name or Path(zip_name).stem, "zip", build, workspace)


def import_files(owner: str, classes: dict[str, list[tuple[str, bytes]]], *, name: str | None = None,
                 val_split=0.15, test_split=0.15, seed: int = 0, workspace=None) -> DatasetInfo:
    """Import classes built by hand: ``{class name: [(file name, bytes), ...]}``."""
    from .data import from_files

    names = [str(c).strip() for c in classes]
    if any(not c for c in names):
        raise DataError("Every class needs a name; type a name for the unnamed class.")
    if len(set(names)) != len(names):
        raise DataError("Two classes have the same name; give every class its own name.")
    empty = [c for c, files in classes.items() if not files]
    if empty:
        raise DataError(f"The class '{empty[0]}' has no images yet; add images to it or remove it.")
    cleaned = {str(c).strip(): list(files) for c, files in classes.items()}
    return _import(owner, name or "Classes built by hand", "files",
                   lambda dest: from_files(cleaned, dest, **_split_kw(val_split, test_split, seed)), workspace)


def import_csv(owner: str, csv_name: str, csv_data: bytes, images: list[tuple[str, bytes]], *,
               name: str | None = None, label_columns: list[str] | None = None, val_split=0.15, test_split=0.15,
               seed: int = 0, workspace=None) -> DatasetInfo:
    """Import a CSV (a ``path`` column and a ``label`` column) with the uploaded images it names.

    Browsers upload file names only, so each CSV path is matched by its file name (``photos/cat1.jpg`` finds
    the uploaded ``cat1.jpg``): the CSV is stored with its paths reduced to file names.
    """
    from .data import from_csv

    if not images:
        raise DataError("Add the images that the CSV lists, then import again.")
    if len(csv_data) > settings.MAX_CSV_BYTES:
        raise DataError(f"The CSV file is larger than {settings.MAX_CSV_BYTES // 2**20} MB; split it.")

    def build(dest: Path):
        source = dest / "source"
        source.mkdir()
        taken: set[str] = set()
        for fname, data in images:
            safe = _safe_name(fname, "image")
            if safe in taken:
                continue
            taken.add(safe)
            if len(data) <= settings.MAX_FILE_BYTES:
                (source / safe).write_bytes(data)
        csv_path = source / ("_labels_" + _safe_name(csv_name, "labels.csv"))
        csv_path.write_bytes(_basename_paths(csv_data))
        return from_csv(csv_path, dest, image_root=source, label_columns=label_columns,
                        **_split_kw(val_split, test_split, seed))

    return _import(owner, name or Path(_safe_name(csv_name, "labels.csv")).stem, "csv", build, workspace)


def _basename_paths(csv_data: bytes) -> bytes:
    """Rewrite a CSV so that every cell that looks like an image path is reduced to a safe file name."""
    import csv
    import io

    from .images import SUPPORTED_EXTS

    try:
        text = csv_data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = csv_data.decode("cp1252", errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(",;\t|", key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text.replace("\x00", ""), newline=""), delimiter=delimiter))
    except csv.Error as err:
        raise DataError("The CSV file cannot be read; save it again as CSV (UTF-8).") from err
    for row in rows[1:]:
        for i, cell in enumerate(row):
            value = cell.strip()
            if value.lower().endswith(SUPPORTED_EXTS) and "://" not in value:
                row[i] = _safe_name(value, value)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def import_sample(owner: str, *, per_class: int = 40, val_split=0.15, test_split=0.15, seed: int = 0,
                  workspace=None) -> DatasetInfo:
    """Generate the synthetic shapes sample (no download) and import it."""
    from .data import from_folder
    from .sample import SAMPLE_NAME as TITLE, make_sample

    def build(dest: Path):
        source = make_sample(dest / "source", per_class=per_class, seed=seed)
        return from_folder(source, dest, **_split_kw(val_split, test_split, seed))

    return _import(owner, TITLE or SAMPLE_NAME, "sample", build, workspace)


def download_public_sample(owner: str, *, url: str | None = None, timeout: float = 5.0, val_split=0.15,
                           test_split=0.15, seed: int = 0, workspace=None) -> DatasetInfo:
    """Download a small public dataset (cats and dogs, the classic transfer-learning example) and import it.

    Raises TLError at once when the machine is offline or the download fails.
    """
    existing = [d for d in list_datasets(owner, include_shared=False, workspace=workspace) if d.kind == "public"]
    if existing:
        return existing[0]
    offline = TLError("This machine is offline (or the download site cannot be reached), so the public sample "
                      "cannot be downloaded: use the built-in sample or upload your own images.")
    tmp_dir = workspace_path(workspace) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    target = tmp_dir / f"public-{secrets.token_hex(6)}.zip"
    try:
        try:
            with urllib.request.urlopen(url or PUBLIC_SAMPLE_URL, timeout=timeout) as response:  # noqa: S310
                _write_upload(response, target, PUBLIC_SAMPLE_MAX_BYTES)
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            raise offline from exc
        from .data import from_zip

        def build(dest: Path):
            return from_zip(target, dest, **_split_kw(val_split, test_split, seed))

        return _import(owner, PUBLIC_SAMPLE_NAME, "public", build, workspace)
    finally:
        target.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ server folders
def server_root() -> Path | None:
    """The operator's data root (``TLS_DATA_ROOT``), resolved, or None when server import is off."""
    root = settings.data_root()
    return root.resolve() if root is not None else None


def resolve_server_path(text: str) -> Path:
    """A folder, .zip or .csv under the operator's data root. Symlinks and ``..`` are resolved BEFORE the check,
    so nothing outside the root can be reached. Raises DataError with the fix."""
    root = server_root()
    if root is None:
        raise DataError("Importing from a folder on the server is turned off (the operator has not set "
                        "TLS_DATA_ROOT); upload a zip instead.")
    raw = str(text or "").strip()
    if not raw or "\x00" in raw:
        raise DataError("Type or choose a folder inside the server's data folder.")
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise DataError("That path cannot be read (it loops through links); choose another folder.") from exc
    if not resolved.is_relative_to(root):
        raise DataError("That folder is outside the data folder this server allows; choose a folder inside it.")
    if not resolved.exists():
        raise DataError(f"There is no '{raw}' in the server's data folder; check the name.")
    if not (resolved.is_dir() or resolved.suffix.lower() in (".zip", ".csv")):
        raise DataError(f"'{raw}' is not a folder, a .zip or a .csv file; choose one of those.")
    return resolved


def list_server_folders(max_depth: int = 2, limit: int = 200) -> list[str]:
    """Folders (and .zip / .csv files) under the data root, relative, for a picker; hidden ones left out."""
    root = server_root()
    if root is None or not root.is_dir():
        return []
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name.lower())
        except OSError:
            return
        for entry in entries:
            if len(found) >= limit or entry.name.startswith("."):
                continue
            try:
                real = entry.resolve()
            except (OSError, RuntimeError):
                continue
            if not real.is_relative_to(root):
                continue
            if entry.is_dir():
                found.append(entry.relative_to(root).as_posix())
                if depth < max_depth:
                    walk(entry, depth + 1)
            elif entry.suffix.lower() in (".zip", ".csv"):
                found.append(entry.relative_to(root).as_posix())

    walk(root, 1)
    return found


def import_server_path(owner: str, text: str, *, name: str | None = None, val_split=0.15, test_split=0.15,
                       seed: int = 0, label_columns: list[str] | None = None, workspace=None) -> DatasetInfo:
    """Import a folder (used in place), a .zip or a .csv from under the data root."""
    from .data import load_data

    path = resolve_server_path(text)
    kw = _split_kw(val_split, test_split, seed)
    if label_columns and path.suffix.lower() == ".csv":
        kw["label_columns"] = label_columns
    return _import(owner, name or path.name, "server", lambda dest: load_data(path, dest, **kw), workspace)


# ------------------------------------------------------------------------------------------------ views
def dataset_summary(dataset) -> dict:
    """Counts for display: per class and split, totals, the bad-file report and warnings."""
    rows = [{"class": c, "train": dataset.counts("train").get(c, 0), "validation": dataset.counts("val").get(c, 0),
             "test": dataset.counts("test").get(c, 0)} for c in dataset.classes]
    for row in rows:
        row["total"] = row["train"] + row["validation"] + row["test"]
    return {"classes": list(dataset.classes), "rows": rows, "n_images": len(dataset.samples),
            "skipped": [{"file": f, "reason": r} for f, r in dataset.report.skipped],
            "warnings": list(dataset.report.warnings), "tasks": dict(dataset.tasks), "source": dataset.source,
            "own_splits": dataset.own_splits}


def thumbnails(dataset, per_class: int = 6, size: int = 96) -> dict[str, list[tuple[str, Any]]]:
    """A few small RGB thumbnails (uint8 arrays) per class, with the name each file came from."""
    import numpy as np
    from PIL import Image

    from .images import load_rgb

    out: dict[str, list[tuple[str, Any]]] = {}
    for label in dataset.classes:
        picks = [s for s in dataset.samples if s.label == label][:per_class]
        thumbs = []
        for s in picks:
            try:
                img = load_rgb(s.path, s.name)
            except TLError:
                continue
            img.thumbnail((size, size), Image.Resampling.BILINEAR)
            thumbs.append((s.name, np.asarray(img)))
        out[label] = thumbs
    return out


# ------------------------------------------------------------------------------------------------ uploads
def save_upload(owner: str, filename: str, data: bytes, *, kinds: tuple[str, ...], workspace=None) -> Path:
    """Keep a user's uploaded model file (weights .h5 / .weights.h5, or a .keras backbone) on disk; returns its path."""
    safe = _safe_name(filename, "upload")
    if not safe.lower().endswith(tuple(k.lower() for k in kinds)):
        raise ModelFileError(f"{safe} is not a {' or '.join(kinds)} file; choose a file of that kind.")
    limit = settings.MAX_UPLOAD_MB * 2**20
    if len(data) > limit:
        raise ModelFileError(f"{safe} is larger than {settings.MAX_UPLOAD_MB} MB, the upload limit.")
    folder = workspace_path(workspace) / "uploads" / _owner_key(owner)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(6)}-{safe}"
    atomic_write(target, bytes(data))
    return target


# ------------------------------------------------------------------------------------------------ drafts
def _draft_path(owner: str, workspace) -> Path:
    folder = workspace_path(workspace) / "drafts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_owner_key(owner)}.json"


def load_draft(owner: str, *, workspace=None) -> dict:
    """The owner's draft (current dataset, model and training settings); rebuilt from the latest run if missing."""
    path = _draft_path(owner, workspace)
    try:
        draft = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(draft, dict):
            return draft
    except (OSError, ValueError):
        pass
    return draft_from_latest_run(owner, workspace=workspace)


def save_draft(owner: str, draft: dict, *, workspace=None) -> None:
    atomic_write(_draft_path(owner, workspace), json.dumps(draft, indent=1, ensure_ascii=False, default=str))


def update_draft(owner: str, *, workspace=None, **changes: Any) -> dict:
    """Merge ``changes`` into the owner's draft (dict values are merged one level deep) and save it."""
    draft = load_draft(owner, workspace=workspace)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(draft.get(key), dict):
            draft[key] = {**draft[key], **value}
        else:
            draft[key] = value
    save_draft(owner, draft, workspace=workspace)
    return draft


MODEL_KEYS = ("backbone", "backbone_file", "weights", "image_size", "freeze", "head")
TRAIN_KEYS = ("strategy", "epochs", "fine_tune_epochs", "batch_size", "learning_rate", "fine_tune_learning_rate",
              "optimizer", "augment", "class_weights", "early_stopping", "seed", "target_data", "label_columns",
              "options")


def draft_from_config(config) -> dict:
    """A draft (dataset, model, train) from a RunConfig."""
    data = config.to_dict()
    return {"dataset_id": dataset_id_of(config.data), "model": {k: data[k] for k in MODEL_KEYS},
            "train": {k: data[k] for k in TRAIN_KEYS}}


def draft_from_latest_run(owner: str, *, workspace=None) -> dict:
    store = RunStore(workspace_path(workspace))
    for record in store.list(owner=owner, include_shared=False):
        try:
            return draft_from_config(store.config(record.id))
        except TLError:
            continue
    return {}


def config_from_draft(draft: dict, **overrides: Any):
    """The RunConfig a draft describes (plus ``overrides``); ConfigError when a setting is invalid."""
    from .runs import RunConfig

    values: dict[str, Any] = {}
    if draft.get("dataset_id"):
        values["data"] = DATASET_PREFIX + draft["dataset_id"]
    values.update({k: v for k, v in (draft.get("model") or {}).items() if k in MODEL_KEYS})
    values.update({k: v for k, v in (draft.get("train") or {}).items() if k in TRAIN_KEYS})
    values.update(overrides)
    return RunConfig.from_dict(values)


# ------------------------------------------------------------------------------------------------ the sample run
SAMPLE_BACKBONE = "mobilenet_025"


def sample_settings(weights_available: bool, reason: str = "") -> tuple[dict, dict, str]:
    """(model, train, note) for the quick sample run: ImageNet MobileNet α=0.25 with feature extraction (its
    weights ship with the studio), else, only when that file is missing or damaged (``reason``), an honest
    fallback that trains the same network from scratch at a small size."""
    head = {"units": 64, "dropout": 0.2, "enabled": True}
    freeze = {"mode": "all_but_top", "n": 20, "layer": None}
    common = {"fine_tune_epochs": 3, "batch_size": 16, "optimizer": "adam", "augment": {"enabled": False},
              "class_weights": False, "early_stopping": 3, "seed": 0, "fine_tune_learning_rate": 1e-5,
              "target_data": None, "label_columns": [], "options": {}}
    if weights_available:
        model = {"backbone": SAMPLE_BACKBONE, "backbone_file": None, "weights": "imagenet", "image_size": None,
                 "freeze": freeze, "head": head}
        train = {**common, "strategy": "feature_extraction", "epochs": 10, "learning_rate": 1e-3}
        note = ("The sample uses MobileNet α=0.25 with its ImageNet weights and feature extraction: the backbone "
                "stays frozen and only a small head learns the three shapes. It takes about a minute.")
    else:
        model = {"backbone": SAMPLE_BACKBONE, "backbone_file": None, "weights": "none", "image_size": 64,
                 "freeze": freeze, "head": head}
        train = {**common, "strategy": "scratch", "epochs": 15, "learning_rate": 1e-3}
        note = ("The ImageNet weights of MobileNet that come with the studio are missing or damaged, so the sample "
                "trains the same network from scratch (random start) on 64×64 images instead: expect much "
                "lower accuracy than transfer learning gives. "
                + (reason or "Reinstall the studio to get the weights back."))
    return model, train, note


def try_sample(owner: str, *, workspace=None, progress: Callable[[str], Any] | None = None) -> tuple[DatasetInfo, str]:
    """Fill every step for the sample: import the shapes, choose the model and a quick strategy (saved in the
    owner's draft). Returns the dataset and a plain note on what was chosen and why. ``progress`` is told each
    step as a sentence before it starts."""
    from .backbones import get_spec, install_shipped_weights
    from .errors import WeightsError

    say = progress or (lambda text: None)
    existing = [d for d in list_datasets(owner, include_shared=False, workspace=workspace) if d.kind == "sample"]
    say("Your sample images are already here; using them." if existing else
        "Drawing 120 pictures of circles, squares and triangles, and splitting them into training, validation "
        "and test images…")
    info = existing[0] if existing else import_sample(owner, workspace=workspace)
    say(f"Putting the ImageNet weights of {get_spec(SAMPLE_BACKBONE).title} (2.1 MB, shipped with the studio) in "
        "place and checking them…")
    try:   # the shipped weights go into Keras's cache now (sha256 checked), so the run itself needs no download
        model, train, note = sample_settings(install_shipped_weights(SAMPLE_BACKBONE))
    except WeightsError as exc:
        model, train, note = sample_settings(False, str(exc))
    say(f"Choosing a quick recipe: {train['strategy'].replace('_', ' ')}, {train['epochs']} epochs.")
    draft = load_draft(owner, workspace=workspace)
    draft.update(dataset_id=info.id, model=model, model_dataset=info.id, train=train,
                 model_title=get_spec(SAMPLE_BACKBONE).title,
                 sample_note=note)
    save_draft(owner, draft, workspace=workspace)
    return info, note
