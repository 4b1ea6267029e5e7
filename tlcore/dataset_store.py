"""The dataset registry: which imported dataset belongs to whom (no streamlit, no TensorFlow).

Datasets are imported with :mod:`tlcore.data` into ``workspace/datasets/<unguessable id>/`` (the folder the
runner reads for ``data="dataset:<id>"``). A small SQLite index (``workspace/datasets.db``) records each
dataset's owner and an explicit ``shared`` flag; nobody sees another owner's datasets unless they are shared.

:mod:`tlcore.data` (which imports scikit-learn, about 2.5 s) is imported lazily, so listing stays fast.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import DataError, TLError
from .owners import workspace_path
from .runs import RunState, RunStore
from .sqlite_index import execute

DATASET_PREFIX = "dataset:"
_ID_RE = re.compile(r"^[0-9a-f]{24}$")
_RETIRED = "deleted:"      # owner prefix of a deleted dataset whose images finished runs still read
_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
  created REAL NOT NULL, last_used REAL NOT NULL, shared INTEGER DEFAULT 0,
  n_classes INTEGER DEFAULT 0, n_images INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS datasets_owner ON datasets(owner);
CREATE TABLE IF NOT EXISTS dataset_versions (
  id TEXT PRIMARY KEY, lineage TEXT NOT NULL, parent TEXT, number INTEGER NOT NULL, changes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dataset_versions_lineage ON dataset_versions(lineage);
"""




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

def datasets_dir(workspace: str | os.PathLike | None = None) -> Path:
    path = workspace_path(workspace) / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def query(workspace, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
    """Run one SQL statement on the datasets index (created when missing)."""
    ws = workspace_path(workspace)
    ws.mkdir(parents=True, exist_ok=True)
    return execute(ws / "datasets.db", sql, args, schema=_SCHEMA)


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
        remove_dataset(info.id, workspace=workspace)
    for row in query(workspace, "SELECT id FROM datasets WHERE owner = ?", (_RETIRED + info.owner,)):
        if row["id"] != info.id and not runs_using_dataset(row["id"], workspace=workspace):
            remove_dataset(row["id"], workspace=workspace)      # its last run went too
    return len(users)


def remove_dataset(dataset_id: str, *, workspace=None) -> None:
    """Remove a dataset's row and its folder, whoever owns it (no checks: the caller decided)."""
    query(workspace, "DELETE FROM datasets WHERE id = ?", (dataset_id,))
    query(workspace, "DELETE FROM dataset_versions WHERE id = ?", (dataset_id,))
    shutil.rmtree(datasets_dir(workspace) / dataset_id, ignore_errors=True)


def dataset_ids(*, workspace=None) -> set[str]:
    """The ids of every dataset in the index (any owner, deleted ones whose images runs still read included)."""
    return {row["id"] for row in query(workspace, "SELECT id FROM datasets")}


def unused_datasets(before: float, *, workspace=None) -> list[str]:
    """Ids of the unshared datasets nobody used since ``before`` (a time stamp), for the retention rule."""
    return [row["id"] for row in query(workspace, "SELECT id FROM datasets WHERE last_used < ? AND shared = 0",
                                       (before,))]


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
    resplit(load_dataset(owner, info.id, workspace=workspace), **split_kw(val_split, test_split, seed))
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



def split_kw(val_split: float, test_split: float, seed: int, small_classes: str = "train") -> dict:
    """The split arguments of :mod:`tlcore.data`, as the numbers it expects. ``small_classes``: a class too
    small to split trains with all its images (``"train"``) or is left out (``"leave_out"``)."""
    return {"val_split": float(val_split), "test_split": float(test_split), "seed": int(seed),
            "small_classes": str(small_classes)}


def register_dataset(owner: str, dataset_id: str, name: str, kind: str, n_classes: int, n_images: int, *,
                     workspace=None) -> DatasetInfo:
    """Record a freshly imported dataset (its folder already holds ``dataset.json``) as this owner's."""
    now = time.time()
    clean = " ".join(str(name).split())[:120] or "My images"
    query(workspace, "INSERT INTO datasets (id, owner, name, kind, created, last_used, shared, n_classes, n_images) "
          "VALUES (?,?,?,?,?,?,0,?,?)", (dataset_id, owner, clean, kind, now, now, n_classes, n_images))
    return get_dataset(owner, dataset_id, workspace=workspace)


# ------------------------------------------------------------------------------------------------ versions
@dataclass
class VersionInfo:
    """One version of a dataset: its own dataset id, its number (1 is the import), what changed from its parent."""

    id: str
    number: int
    parent: str | None
    changes: str
    name: str
    created: float

    @property
    def label(self) -> str:
        return f"v{self.number}: {self.changes}"

    @property
    def ref(self) -> str:
        """The value of ``RunConfig.data`` that names this version."""
        return DATASET_PREFIX + self.id


def _version_row(dataset_id: str, workspace) -> sqlite3.Row | None:
    rows = query(workspace, "SELECT * FROM dataset_versions WHERE id = ?", (dataset_id,))
    return rows[0] if rows else None


def version_number(dataset_id: str | None, *, workspace=None) -> int:
    """Which version of its dataset ``dataset_id`` is (1 for an import that was never fixed)."""
    row = _version_row(dataset_id_of(dataset_id) or "", workspace)
    return int(row["number"]) if row else 1


def dataset_versions(owner: str, dataset_id: str, *, workspace=None) -> list[VersionInfo]:
    """Every version of this dataset that this owner may see, oldest first (v1 is the import)."""
    info = get_dataset(owner, dataset_id, workspace=workspace)
    row = _version_row(info.id, workspace)
    lineage = row["lineage"] if row else info.id
    found = {r["id"]: r for r in query(workspace, "SELECT * FROM dataset_versions WHERE lineage = ?", (lineage,))}
    out = []
    for ds_id in [lineage] + sorted(found, key=lambda i: found[i]["number"]):
        try:
            d = get_dataset(owner, ds_id, workspace=workspace)
        except DataError:
            continue                            # deleted, or another owner's version
        r = found.get(ds_id)
        out.append(VersionInfo(d.id, int(r["number"]) if r else 1, r["parent"] if r else None,
                               r["changes"] if r else "as imported", d.name, d.created))
    return out


def new_version(owner: str, dataset_id: str, fixes, *, seed: int = 0, workspace=None) -> VersionInfo:
    """Apply :class:`tlcore.data.versions.Fixes` (or a dict of its fields) as a new version (a new dataset of this owner, named "… v2");
    the dataset itself is never changed, so runs trained on it keep what they trained on."""
    import secrets

    from .data import Dataset
    from .data.versions import Fixes, derive

    info = get_dataset(owner, dataset_id, workspace=workspace)
    fixes = Fixes(**fixes) if isinstance(fixes, dict) else fixes
    if fixes.empty():
        raise DataError("Nothing to change: choose images to remove or move, or classes to merge, first.")
    row = _version_row(info.id, workspace)
    lineage = row["lineage"] if row else info.id
    numbers = [r["number"] for r in query(workspace, "SELECT number FROM dataset_versions WHERE lineage = ?",
                                          (lineage,))]
    number = max([1] + numbers) + 1
    new_id = secrets.token_hex(12)
    dest = datasets_dir(workspace) / new_id
    try:
        dataset, changes = derive(Dataset.load(datasets_dir(workspace) / info.id), dest, fixes, seed=seed)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    base = re.sub(r" v\d+$", "", info.name)
    register_dataset(owner, new_id, f"{base} v{number}", info.kind, len(dataset.classes), len(dataset.samples),
                     workspace=workspace)
    query(workspace, "INSERT INTO dataset_versions (id, lineage, parent, number, changes) VALUES (?,?,?,?,?)",
          (new_id, lineage, info.id, number, changes))
    return next(v for v in dataset_versions(owner, new_id, workspace=workspace) if v.id == new_id)

