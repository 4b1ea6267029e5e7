"""Where a run executes, and how it reports back: the worker protocol shared by every executor.

A run trains in a worker: a thread of this process (``thread``, for tests that patch the engine), a child process
(``process``, the default, :mod:`tlcore.worker_process`) or a Ray task (``ray``, :mod:`tlcore.worker_ray`). A worker
in another process writes only its run folder, never the SQLite index:

- ``events.jsonl``: the events, appended as in a thread (small ``O_APPEND`` lines, safe across processes);
- ``outcome.json``: the final state, error and metrics, which the server copies into ``runs.db``;
- ``worker.json``: ``{pid, host, executor, parent, ...}``, written by the server when the worker starts;
- ``stop``: written by the server to ask for a Stop; the worker looks for it ten times a second.

So ``runs.db`` is opened by the server alone, on its own disk, whether the worker is local or on a Ray node.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .artifacts import read_json
from .runs import RunState, RunStore, atomic_write

OUTCOME, WORKER, STOP = "outcome.json", "worker.json", "stop"
MEMORY_SENTENCE = "The training process ran out of memory: choose a smaller backbone, image size or batch."
STOP_POLL_S = 0.1                              # how often a worker looks for the stop file


class FolderStore(RunStore):
    """A worker's view of the run store: the run folder only. ``set_state`` writes ``outcome.json``, a Stop is
    the ``stop`` file, and the SQLite index is never opened (the server relays the outcome into it)."""

    def __init__(self, workspace: str | os.PathLike) -> None:       # no super(): nothing opens runs.db here
        self.workspace = Path(workspace)
        self.db_path = None

    def _exec(self, sql: str, args: tuple = ()):
        raise RuntimeError("a worker never opens the run index; it writes its run folder")

    def set_state(self, run_id: str, state: RunState, *, error: str | None = None, metrics: dict | None = None) -> None:
        if state.finished:
            outcome = {"state": state.value, "error": error, "metrics": metrics, "t": time.time()}
            atomic_write(self.run_dir(run_id) / OUTCOME, json.dumps(outcome, default=str))

    def request_stop(self, run_id: str) -> None:
        request_folder_stop(self.run_dir(run_id))

    def stop_requested(self, run_id: str) -> bool:
        return (self.run_dir(run_id) / STOP).exists()


def request_folder_stop(run_dir: Path) -> None:
    """Ask the run's worker, wherever it runs, to stop within one batch."""
    try:
        Path(run_dir, STOP).touch()
    except OSError:
        pass                                  # a deleted run folder has no worker left to stop


class StopRelay:
    """Carries a Stop to a run's worker while the server watches it: one asked for in this process (``stop``), or
    from another (the run store's flag, read once a second), becomes the stop file the worker reads each batch."""

    def __init__(self, store: Any, run_id: str, run_dir: Path, stop: Any) -> None:
        self.store, self.run_id, self.run_dir, self.stop = store, run_id, Path(run_dir), stop
        self.sent, self.checked = False, time.monotonic()

    def poll(self) -> None:
        if not self.stop.is_set() and time.monotonic() - self.checked > 1:
            self.checked = time.monotonic()
            if self.store.stop_requested(self.run_id):
                self.stop.set()
        if self.stop.is_set() and not self.sent:
            request_folder_stop(self.run_dir)
            self.sent = True


def write_worker_json(run_dir: Path, **info) -> dict:
    """Record who trains the run (merged into what is there): pid, host, executor, parent and its start time."""
    merged = {**(read_json(Path(run_dir) / WORKER) or {}), **info}
    atomic_write(Path(run_dir) / WORKER, json.dumps(merged, indent=2))
    return merged


def host() -> str:
    return socket.gethostname()


def server_fields(pid: int) -> dict:
    """worker.json's fields for a worker ``pid`` on this machine started by this process (the server)."""
    me = os.getpid()
    return {"pid": pid, "host": host(), "start": process_start(pid), "parent": me, "parent_host": host(),
            "parent_start": process_start(me)}


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat``): tells a pid from its reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])       # a zombie has exited: it counts as gone


def same_process(pid: int | None, start: int | None) -> bool:
    """True while ``pid`` runs and is the process that started at ``start`` (not a later one with its number)."""
    if not pid:
        return False
    now = process_start(pid)
    return now is not None and (start is None or now == start)


def apply_outcome(store: RunStore, run_id: str) -> RunState | None:
    """Copy a worker's ``outcome.json`` into the index; None when the worker wrote none (it died)."""
    outcome = read_json(store.run_dir(run_id) / OUTCOME)
    try:
        state = RunState(outcome["state"]) if outcome else None
    except (KeyError, ValueError):
        state = None
    if state is None or not state.finished:
        return None
    store.set_state(run_id, state, error=outcome.get("error"), metrics=outcome.get("metrics"))
    return state


def death_sentence(exitcode: int | None, over_cap_mb: int | None = None) -> str:
    """The plain sentence for a worker that ended without an outcome (killed, out of memory, crashed)."""
    if over_cap_mb is not None:
        return (f"The training process ran out of memory (it needed more than the {over_cap_mb} MB each run may "
                "use): choose a smaller backbone, image size or batch.")
    if exitcode == -signal.SIGKILL:
        return MEMORY_SENTENCE
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return (f"The training process crashed ({name}): start the run again, or choose another backbone or a "
                "smaller batch; report it if it repeats.")
    return (f"The training process ended unexpectedly (exit code {exitcode}): start the run again, and report it "
            "if it repeats.")


def fail_dead_worker(store: RunStore, run_id: str, exitcode: int | None, over_cap_mb: int | None = None,
                     message: str | None = None) -> RunState:
    """The run of a worker that died: its outcome if it wrote one, else failed with the sentence (``message``
    when the executor knows better, such as a Ray node that stopped answering)."""
    state = apply_outcome(store, run_id) if over_cap_mb is None else None
    if state is not None:
        return state
    message = message or death_sentence(exitcode, over_cap_mb)
    store.set_state(run_id, RunState.FAILED, error=message)
    store.append_event(run_id, "failed", message=message)
    with open(store.run_dir(run_id) / "error.log", "a", encoding="utf-8") as fh:
        fh.write(f"worker ended with exit code {exitcode} and no outcome; cap exceeded: {over_cap_mb}\n")
    return RunState.FAILED


def watch_stop(run_dir: Path, stop: threading.Event, done: threading.Event, parent: int | None = None) -> None:
    """In a worker: set ``stop`` once the server writes the stop file, or once the server process ``parent``
    is gone (a child outliving its server stops at the next batch). A daemon thread, until ``done``."""
    def loop() -> None:
        while not stop.wait(STOP_POLL_S) and not done.is_set():
            if (run_dir / STOP).exists() or (parent and os.getppid() != parent):
                stop.set()

    threading.Thread(target=loop, name="tls-stop-watch", daemon=True).start()


def run_in_worker(workspace: str, run_id: str, parent: int | None = None, stop_dir: Path | None = None) -> dict:
    """A worker's body (child process or Ray task): train ``run_id`` writing only its folder; the outcome.
    ``parent`` is the server's pid when the worker is its child process; ``stop_dir`` is the folder whose stop
    file stops it (default: its own; a helper worker of a run over several watches the run's folder)."""
    from .runner import execute_run

    store = FolderStore(workspace)
    stop, done = threading.Event(), threading.Event()
    watch_stop(Path(stop_dir) if stop_dir else store.run_dir(run_id), stop, done, parent)
    try:
        execute_run(store, run_id, stop)
    finally:
        done.set()
    return read_json(store.run_dir(run_id) / OUTCOME) or {}


def stop_orphans(store: RunStore, timeout: float = 10.0) -> list[str]:
    """At start-up: stop the workers of runs whose server is gone, so that ``recover_interrupted`` can mark them.
    A worker whose server still runs (a CLI in another terminal) is left alone. Returns the runs it stopped."""
    stopped = []
    for record in store.list():
        if record.state.finished:
            continue
        run_dir = store.run_dir(record.id)
        info = read_json(run_dir / WORKER)
        if not info or info.get("ended"):
            continue
        if info.get("parent_host", info.get("host")) != host():
            continue                                           # another machine's server: not ours to judge
        if same_process(info.get("parent"), info.get("parent_start")):
            continue                                           # its server lives (a CLI in another terminal)
        request_folder_stop(run_dir)                           # reaches a worker on any machine
        if info.get("host") == host() and same_process(info.get("pid"), info.get("start")):
            os.kill(info["pid"], signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while same_process(info["pid"], info.get("start")) and time.monotonic() < deadline:
                time.sleep(0.05)                               # the kernel takes a moment; poll with a deadline
        write_worker_json(run_dir, ended=time.time(), orphan=True)
        stopped.append(record.id)
    return stopped


class ThreadExecutor:
    """Runs train in a thread of this process (``TLS_EXECUTOR=thread``): what the unit tests use to patch the
    engine. A crash of the run takes the process down with it."""

    name = "thread"

    def run(self, store: RunStore, run_id: str, stop: threading.Event) -> RunState:
        import sys

        if "tensorflow" not in sys.modules:          # the first run after a start imports TensorFlow
            store.append_event(run_id, "phase", phase="load",
                               message="Loading TensorFlow (only the first run after a server start)")
        from .runner import execute_run

        write_worker_json(store.run_dir(run_id), executor=self.name, **server_fields(os.getpid()))
        return execute_run(store, run_id, stop)

    def close(self) -> None:
        pass
