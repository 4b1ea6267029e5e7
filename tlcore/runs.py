"""RunConfig (the one description of a run) and the run store: run folders plus one SQLite index."""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, RunError


@dataclass
class RunConfig:
    """Everything that defines a run. Round-trips to the JSON that ``python -m tlcore train --config`` reads."""

    data: str = ""                        # zip / folder / csv path, or "dataset:<id>" imported in the workspace
    backbone: str = "mobilenet_025"
    backbone_file: str | None = None      # a user's own .keras backbone (replaces ``backbone``)
    weights: str = "imagenet"             # imagenet | none | path to .h5 / .weights.h5
    strategy: str = "feature_extraction"
    image_size: int | None = None         # None: the backbone's default
    epochs: int = 10
    fine_tune_epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_learning_rate: float = 1e-5
    optimizer: str = "adam"               # adam | rmsprop | sgd
    freeze: dict = field(default_factory=lambda: {"mode": "all_but_top", "n": 20, "layer": None})
    head: dict = field(default_factory=lambda: {"units": 1024, "dropout": 0.2, "enabled": True})
    augment: dict = field(default_factory=lambda: {"enabled": False})
    class_weights: bool = False           # weight classes inversely to their size
    early_stopping: int = 3               # patience in epochs; 0 turns it off
    seed: int = 0
    val_split: float = 0.15
    test_split: float = 0.15
    target_data: str | None = None        # domain adaptation: unlabelled target images
    label_columns: list[str] = field(default_factory=list)   # multi-task: CSV label columns
    options: dict = field(default_factory=dict)               # strategy-specific settings
    distribute: str = "auto"              # auto | none | mirrored | multiworker
    devices: list[str] | None = None      # explicit devices for mirrored, e.g. ["/cpu:0", "/cpu:1"]
    name: str = ""
    group: str = ""                       # runs queued together by one comparison share this id

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Build from a dict; unknown keys and wrong types raise ConfigError naming them."""
        if not isinstance(data, dict):
            raise ConfigError("A run config must be a JSON object of settings.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown setting(s) in the run config: {', '.join(unknown)}. Valid: {', '.join(sorted(known))}.")
        config = cls(**data)
        config.validate()
        return config

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"The run config is not valid JSON (line {exc.lineno}): fix or re-download it.") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"The config file {path} does not exist.")
        return cls.from_json(path.read_text(encoding="utf-8"))

    def validate(self) -> None:
        """Raise ConfigError with the fix when a setting is out of range."""
        checks = [
            (isinstance(self.epochs, int) and 0 <= self.epochs <= 1000, "epochs must be a whole number from 0 to 1000"),
            (isinstance(self.fine_tune_epochs, int) and 0 <= self.fine_tune_epochs <= 1000,
             "fine_tune_epochs must be a whole number from 0 to 1000"),
            (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 4096, "batch_size must be from 1 to 4096"),
            (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < float("inf"), "learning_rate must be above 0"),
            (isinstance(self.fine_tune_learning_rate, (int, float)) and 0 < self.fine_tune_learning_rate < float("inf"),
             "fine_tune_learning_rate must be above 0"),
            (self.optimizer in ("adam", "rmsprop", "sgd"), "optimizer must be adam, rmsprop or sgd"),
            (0 <= self.val_split < 0.9 and 0 <= self.test_split < 0.9 and self.val_split + self.test_split < 0.9,
             "val_split and test_split must be fractions that leave room for training data"),
            (self.image_size is None or (isinstance(self.image_size, int) and 16 <= self.image_size <= 1024),
             "image_size must be from 16 to 1024 pixels"),
            (self.distribute in ("auto", "none", "mirrored", "multiworker"),
             "distribute must be auto, none, mirrored or multiworker"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid run config: {message}.")


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
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        db = self._db()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

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
                atomic_write(self.run_dir(run_id) / "config.json", replace_fields(config, name=clean).to_json())
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

    def purge(self, older_than_days: float) -> list[str]:
        """The retention rule: delete finished runs that ended more than ``older_than_days`` ago."""
        cutoff = time.time() - older_than_days * 86400
        rows = self._exec("SELECT id FROM runs WHERE state NOT IN ('queued', 'running') AND finished < ?", (cutoff,))
        for row in rows:
            self.delete(row["id"])
        return [row["id"] for row in rows]

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

    def iter_records(self) -> Iterator[RunRecord]:
        yield from self.list()


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


def replace_fields(config: RunConfig, **changes: Any) -> RunConfig:
    return dataclasses.replace(config, **changes)
