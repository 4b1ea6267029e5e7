"""The run store: run folders plus one SQLite index (RunConfig, re-exported here, lives in tlcore.config)."""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from .config import RunConfig  # noqa: F401 - the one description of a run lives in tlcore.config
from .errors import ConfigError, RunError
from .sqlite_index import connect, execute


class RunState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in (RunState.DONE, RunState.FAILED, RunState.STOPPED, RunState.INTERRUPTED)


@dataclass
class RunRecord:
    id: str
    owner: str
    name: str
    strategy: str
    backbone: str
    state: RunState
    created: float
    started: float | None
    finished: float | None
    error: str | None
    metrics: dict
    shared: bool
    pid: int | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT, strategy TEXT, backbone TEXT,
  state TEXT NOT NULL, created REAL, started REAL, finished REAL, pid INTEGER,
  error TEXT, metrics TEXT DEFAULT '{}', stop_requested INTEGER DEFAULT 0, shared INTEGER DEFAULT 0
);
"""
_LOCK = threading.RLock()
MAX_RUN_NAME = 120                        # characters in a run's name


class RunStore:
    """Run folders under ``workspace/runs/<id>/`` and the SQLite index ``workspace/runs.db``."""

    def __init__(self, workspace: str | os.PathLike) -> None:
        self.workspace = Path(workspace)
        (self.workspace / "runs").mkdir(parents=True, exist_ok=True)
        self.db_path = self.workspace / "runs.db"
        db = connect(self.db_path)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        finally:
            db.close()

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return execute(self.db_path, sql, args)

    # -- runs -------------------------------------------------------------------------------------------
    def create(self, config: RunConfig, owner: str = "local", state: RunState = RunState.QUEUED) -> str:
        """A new run with an unguessable id; its folder holds the config."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(6)
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True)
        atomic_write(folder / "config.json", config.to_json())
        self._exec(
            "INSERT INTO runs (id, owner, name, strategy, backbone, state, created) VALUES (?,?,?,?,?,?,?)",
            (run_id, owner, config.name or config.strategy, config.strategy,
             config.backbone if not config.backbone_file else "custom", state.value, time.time()),
        )
        return run_id

    def run_dir(self, run_id: str) -> Path:
        return self.workspace / "runs" / run_id

    def config(self, run_id: str) -> RunConfig:
        return RunConfig.load(self.run_dir(run_id) / "config.json")

    def get(self, run_id: str) -> RunRecord:
        rows = self._exec("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise RunError(f"There is no run '{run_id}': check the id, or list runs with `python -m tlcore runs`.")
        return _record(rows[0])

    def list(self, owner: str | None = None, include_shared: bool = True) -> list[RunRecord]:
        """Runs, newest first; with ``owner``, only that owner's (plus runs a teacher shared)."""
        if owner is None:
            rows = self._exec("SELECT * FROM runs ORDER BY created DESC")
        else:
            rows = self._exec("SELECT * FROM runs WHERE owner = ? OR (shared = 1 AND ?) ORDER BY created DESC",
                              (owner, int(include_shared)))
        return [_record(r) for r in rows]

    def set_state(self, run_id: str, state: RunState, *, error: str | None = None, metrics: dict | None = None) -> None:
        now = time.time()
        sets, args = ["state = ?"], [state.value]
        if state == RunState.RUNNING:
            sets += ["started = ?", "pid = ?"]
            args += [now, os.getpid()]
        if state.finished:
            sets.append("finished = ?")
            args.append(now)
        if error is not None:
            sets.append("error = ?")
            args.append(error)
        if metrics is not None:
            sets.append("metrics = ?")
            args.append(json.dumps(metrics))
        self._exec(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def set_shared(self, run_id: str, shared: bool) -> None:
        """A teacher shares a run with everyone on the server, explicitly."""
        self._exec("UPDATE runs SET shared = ? WHERE id = ?", (int(shared), run_id))

    def request_stop(self, run_id: str) -> None:
        self._exec("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))

    def stop_requested(self, run_id: str) -> bool:
        rows = self._exec("SELECT stop_requested FROM runs WHERE id = ?", (run_id,))
        return bool(rows and rows[0][0])

    def recover_interrupted(self) -> list[str]:
        """Runs left queued/running by a process that is gone become 'interrupted'. Returns their ids."""
        rows = self._exec("SELECT id, pid, state FROM runs WHERE state IN ('queued', 'running')")
        lost = [r["id"] for r in rows if r["pid"] is None or r["pid"] == os.getpid() or not _alive(r["pid"])]
        for run_id in lost:
            self.set_state(run_id, RunState.INTERRUPTED,
                           error="The server stopped while this run was in progress; restart it from its settings.")
            self.append_event(run_id, "interrupted", message="The server stopped during this run.")
        return lost

    def rename(self, run_id: str, name: str, *, owner: str | None = None) -> str:
        """Give a run a new name (also in its ``config.json``); with ``owner``, only that owner may. Returns the
        cleaned name; RunError with the fix for an empty or too long name, an unknown run or someone else's."""
        record = self._owned(run_id, owner, "rename")
        clean = " ".join(str(name or "").split())
        if not clean:
            raise RunError("A run's name cannot be empty: type a few words that say what this run tried.")
        if len(clean) > MAX_RUN_NAME:
            raise RunError(f"That name is {len(clean)} characters long; use at most {MAX_RUN_NAME}.")
        if clean != record.name:
            self._exec("UPDATE runs SET name = ? WHERE id = ?", (clean, run_id))
            try:
                config = self.config(run_id)
            except ConfigError:
                config = None                        # a run folder without a readable config keeps only the index
            if config is not None:
                atomic_write(self.run_dir(run_id) / "config.json", dataclasses.replace(config, name=clean).to_json())
        return clean

    def delete(self, run_id: str, *, owner: str | None = None) -> None:
        """Delete a finished run with its folder (model, evaluation, exports). A run that is waiting or training
        is refused with a sentence that says to stop it first; with ``owner``, only that owner may delete it."""
        import shutil

        rows = self._exec("SELECT * FROM runs WHERE id = ?", (run_id,))
        if rows:
            record = self._owned(run_id, owner, "delete")
            if record.state == RunState.RUNNING:
                raise RunError(f"The run '{record.name}' is still training: stop it first (Stop on the Train page), "
                               "then delete it.")
            if record.state == RunState.QUEUED:
                raise RunError(f"The run '{record.name}' is still waiting to train: stop it first (Stop on the "
                               "Train page), then delete it.")
        elif owner is not None:
            raise RunError(f"There is no run '{run_id}': it may have been deleted already.")
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
        self._exec("DELETE FROM runs WHERE id = ?", (run_id,))

    def _owned(self, run_id: str, owner: str | None, action: str) -> RunRecord:
        record = self.get(run_id)
        if owner is not None and record.owner != owner:
            raise RunError(f"Only the person who trained the run '{record.name}' can {action} it.")
        return record

    def resolve(self, ref: str) -> str:
        """A run id, or a run folder path → the run id."""
        path = Path(ref)
        if path.is_dir() and (path / "config.json").is_file():
            return path.name
        return self.get(ref).id

    # -- events -----------------------------------------------------------------------------------------
    def append_event(self, run_id: str, type: str, **data: Any) -> dict:
        """Append one event to the run's ``events.jsonl`` (append-only; readers may poll it)."""
        event = {"t": time.time(), "type": type, **data}
        with _LOCK:
            path = self.run_dir(run_id) / "events.jsonl"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, default=_jsonable) + "\n")
        return event

    def read_events(self, run_id: str, after: int = 0) -> list[dict]:
        """Events from index ``after`` on (pass ``len(previous)`` to poll for new ones)."""
        path = self.run_dir(run_id) / "events.jsonl"
        if not path.exists():
            return []
        out = []
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= after and line.endswith("\n"):
                    out.append(json.loads(line))
        return out


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], owner=row["owner"], name=row["name"], strategy=row["strategy"], backbone=row["backbone"],
        state=RunState(row["state"]), created=row["created"], started=row["started"], finished=row["finished"],
        error=row["error"], metrics=json.loads(row["metrics"] or "{}"), shared=bool(row["shared"]), pid=row["pid"],
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OSError):
        return False
    return True


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a crash or a full disk leaves no half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
