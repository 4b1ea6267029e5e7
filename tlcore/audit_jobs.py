"""Running the data check: on a source path for the command line, or on an imported dataset in the background.

The page's check is a task of the training queue (:meth:`tlcore.jobs.JobManager.submit_task`): it waits for a slot
behind the runs and checks queued before it, one job per person at a time like a run, and then runs in the slot's
thread. It reports its place in the queue, its stage and progress in :func:`check_status`, stops with
:func:`stop_check`, and writes its result to ``<dataset folder>/audit.json``, which :func:`load_check` reads back. A dataset is never changed by its check:
fixes make a new version (:func:`tlcore.dataset_store.new_version`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from .dataset_store import datasets_dir, get_dataset, load_dataset
from .errors import DataError, TLError
from .owners import workspace_path

log = logging.getLogger("tlcore.audit")
RESULT_FILE = "audit.json"
_LOCK = threading.Lock()
_STATUS: dict[str, dict] = {}          # dataset id -> {"state", "stage", "done", "total", "error"}
_QUEUED: dict[str, Any] = {}           # dataset id -> the JobManager its check was queued on
ACTIVE = ("waiting", "running")        # the states of a check not yet ended


def _store(workspace: Any):
    from .audit_features import workspace_store

    return workspace_store(workspace_path(workspace))


def audit_source(source: str | os.PathLike, *, workspace: Any = None, options: Any = None) -> dict:
    """Check a folder, zip or CSV without keeping it: imported into a temporary folder (its own train/valid/test
    folders are kept; otherwise every image counts as training), checked with the workspace's feature store."""
    from .audit import audit_dataset
    from .data import load_data

    tmp = workspace_path(workspace) / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="audit-", dir=tmp))
    try:
        dataset = load_data(source, dest, val_split=0.0, test_split=0.0)
        return audit_dataset(dataset, options=options, store=_store(workspace))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def result_path(dataset_id: str, workspace: Any = None) -> Path:
    return datasets_dir(workspace) / dataset_id / RESULT_FILE


def load_check(owner: str, dataset_id: str, *, workspace: Any = None) -> dict | None:
    """The last finished check of a dataset this owner may see, or None when it was never checked."""
    info = get_dataset(owner, dataset_id, workspace=workspace)
    try:
        return json.loads(result_path(info.id, workspace).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _task_id(dataset_id: str) -> str:
    return f"task:check:{dataset_id}"


def check_status(dataset_id: str) -> dict:
    """``{"state": "idle" | "waiting" | "running" | "done" | "failed" | "stopped", "stage", "done", "total",
    "error", "position"}``; ``position`` is the check's place in the queue while it waits (1 = next)."""
    with _LOCK:
        status = dict(_STATUS.get(dataset_id) or {"state": "idle", "stage": "", "done": 0, "total": 0, "error": ""})
        manager = _QUEUED.get(dataset_id)
    status["position"] = manager.queue_position(_task_id(dataset_id)) if manager is not None else None
    return status


def _set(dataset_id: str, **fields: Any) -> None:
    with _LOCK:
        _STATUS.setdefault(dataset_id, {"state": "waiting", "stage": "", "done": 0, "total": 0, "error": ""})
        _STATUS[dataset_id].update(fields)


def start_check(owner: str, dataset_id: str, *, workspace: Any = None, options: Any = None) -> str:
    """Queue a check of a dataset (one already waiting or under way is not queued twice); returns the dataset id,
    whose :func:`check_status` then tells how far it got."""
    from .jobs import get_manager

    info = get_dataset(owner, dataset_id, workspace=workspace)
    manager = get_manager(workspace_path(workspace))
    with _LOCK:
        if _STATUS.get(info.id, {}).get("state") in ACTIVE:
            return info.id
        _STATUS[info.id] = {"state": "waiting", "stage": "", "done": 0, "total": 0, "error": ""}
        _QUEUED[info.id] = manager
    manager.submit_task(_task_id(info.id), lambda stop: _work(owner, info.id, workspace, options, stop), owner)
    return info.id


def stop_check(dataset_id: str) -> None:
    """Stop a waiting or running check: it ends within one batch of images, and the last result stays."""
    with _LOCK:
        manager = _QUEUED.get(dataset_id)
        waiting = _STATUS.get(dataset_id, {}).get("state") == "waiting"
    if manager is not None:
        manager.stop(_task_id(dataset_id))
        if waiting:
            _set(dataset_id, state="stopped", stage="")


def wait_check(dataset_id: str, timeout: float | None = None) -> dict:
    """Wait for a queued check to end (for tests and the command line); its status."""
    with _LOCK:
        manager = _QUEUED.get(dataset_id)
    if manager is not None:
        manager.wait(_task_id(dataset_id), timeout)
    return check_status(dataset_id)


def _work(owner: str, dataset_id: str, workspace: Any, options: Any, stop: threading.Event) -> None:
    from .audit import audit_dataset

    def interrupt() -> None:
        if stop.is_set():
            raise _Stopped

    try:
        _set(dataset_id, state="running", stage="features")
        dataset = load_dataset(owner, dataset_id, workspace=workspace)
        result = audit_dataset(dataset, options=options, store=_store(workspace), stop=interrupt,
                               progress=lambda stage, done, total: _set(dataset_id, stage=stage, done=done,
                                                                         total=total))
        result["dataset"] = dataset_id
        target = result_path(dataset_id, workspace)
        tmp = target.with_name(f".{RESULT_FILE}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, target)
        _set(dataset_id, state="done", stage="done")
    except _Stopped:
        _set(dataset_id, state="stopped", stage="")
    except TLError as exc:
        _set(dataset_id, state="failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the page shows a sentence; the log keeps the traceback
        log.exception("data check failed")
        _set(dataset_id, state="failed", error=f"The check stopped with an unexpected {type(exc).__name__}; "
                                                "try again, and tell the operator if it happens again.")


class _Stopped(Exception):
    """The person stopped the check."""


def source_of(dataset: Any, name: str) -> Any:
    """The sample of ``dataset`` whose source name is ``name``; DataError when none is."""
    for sample in dataset.samples:
        if sample.name == name:
            return sample
    raise DataError(f"'{name}' is not in this dataset any more; check the data again.")
