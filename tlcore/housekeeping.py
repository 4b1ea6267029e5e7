"""Housekeeping: each browser session's temporary folder, the start-up sweep of what a killed server left behind,
and the retention rule that bounds the workspace's growth."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from . import settings
from .errors import TLError
from .feature_store import FeatureStore
from .runs import RunStore
from .dataset_store import dataset_ids, datasets_dir, datasets_in_use, remove_dataset, unused_datasets
from .owners import workspace_path


# ------------------------------------------------------------------------------------------------ temporary files
def session_dir(key: str, *, workspace=None) -> Path:
    """The temporary folder of one browser session (``key``: the session's random hex id); created if missing."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", str(key)):
        raise TLError("This browser session's id is not valid; reload the page.")
    folder = workspace_path(workspace) / "tmp" / "sessions" / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def end_session(folder: str | Path, *, workspace=None) -> bool:
    """Delete a session's temporary folder when the session ends; True when something was removed."""
    folder = Path(folder).resolve()
    if folder.parent != (workspace_path(workspace) / "tmp" / "sessions").resolve() or not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def sweep_leftovers(before: float, *, workspace=None) -> dict:
    """Remove what a server stopped mid-way left behind, if older than ``before`` (the server's start time):
    session folders, half-imported datasets (a folder without a database row), export staging folders."""
    ws = workspace_path(workspace)
    counts = {"sessions": 0, "datasets": 0, "exports": 0}

    def stale(path: Path) -> bool:
        try:
            return path.stat().st_mtime < before
        except OSError:
            return False

    def remove(path: Path, key: str) -> None:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        counts[key] += 1

    tmp = ws / "tmp"
    for path in [*(tmp / "sessions").glob("*"), *tmp.glob("*.zip")]:
        if stale(path):
            remove(path, "sessions")
    known = dataset_ids(workspace=ws)
    for path in datasets_dir(ws).glob("*"):
        if path.is_dir() and path.name not in known and stale(path):
            remove(path, "datasets")
    for path in (ws / "runs").glob("*/exports/.export-*"):
        if stale(path):
            remove(path, "exports")
    return counts


# ------------------------------------------------------------------------------------------------ retention
def cleanup(days: int | None = None, *, workspace=None, now: float | None = None) -> dict:
    """Delete what nobody used for ``days`` (default ``settings.RETENTION_DAYS``; 0 or less keeps everything):
    unshared datasets not used by a waiting or training run, finished unshared runs, drafts and uploads, and the
    feature store's entries no run read in that time (the store is also bounded by ``TLS_FEATURE_CACHE_GB``).
    Returns the counts deleted."""
    days = settings.RETENTION_DAYS if days is None else days
    counts = {"datasets": 0, "runs": 0, "drafts": 0, "uploads": 0}
    if days is None or days <= 0:
        return counts
    ws = workspace_path(workspace)
    cutoff = (now or time.time()) - days * 86400
    in_use = datasets_in_use(ws)
    for dataset_id in unused_datasets(cutoff, workspace=ws):
        if dataset_id in in_use:
            continue
        remove_dataset(dataset_id, workspace=ws)
        counts["datasets"] += 1
    store = RunStore(ws)
    keep: set[str] = set()
    for record in store.list():
        if record.state.finished and not record.shared and (record.finished or record.created) < cutoff:
            store.delete(record.id)
            counts["runs"] += 1
            continue
        try:
            config = store.config(record.id)
        except TLError:
            continue
        keep.update(str(Path(p).resolve()) for p in (config.weights, config.backbone_file) if p and "/" in p)
    for folder, key in ((ws / "drafts", "drafts"), (ws / "uploads", "uploads"), (ws / "tmp", "uploads")):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff and str(path.resolve()) not in keep:
                    path.unlink()
                    counts[key] += 1
            except OSError:
                continue
    counts["features"] = FeatureStore(ws / "features").cleanup(cutoff)
    return counts
