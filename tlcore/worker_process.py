"""The default executor: each run trains in its own child process, watched by the server.

A child is a fresh interpreter, ``python -m tlcore.worker_process`` (fork + exec, like multiprocessing's ``spawn``;
``fork`` alone is unsafe once TensorFlow is loaded). It is started with ``subprocess`` rather than
multiprocessing, because multiprocessing's spawn re-runs the caller's main script in every child, which breaks any
script without a ``__main__`` guard. The child reads its one job, a JSON line, from stdin, trains it and exits,
which returns all its memory to the machine. One spare child is kept started with TensorFlow imported
(``TLS_WARM_WORKERS``), waiting for its job, so that a run does not wait for the import. A new spare is started
when a run ends (and when the executor starts), not when one begins: its import would compete with the run.

While a child trains, the server's slot thread watches it ten times a second: it relays a Stop (the run folder's
``stop`` file), reads the child's resident memory from ``/proc/<pid>/status`` and kills it past
``TLS_MAX_RUN_MEMORY_MB`` (a watchdog on RSS rather than ``RLIMIT_AS``, which TensorFlow's large virtual
reservations trip at once), and notices within a tenth of a second when it dies. A child whose server is gone
stops its run at the next batch.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import settings
from .runs import RunState, RunStore
from .worker import (StopRelay, apply_outcome, fail_dead_worker, run_in_worker, server_fields,
                     write_worker_json)

WATCH_S = 0.1                                  # how often the server looks at a training child
_ROOT = str(Path(__file__).resolve().parents[1])   # the folder that holds the tlcore package


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MB from /proc (0 when it is gone): now (``VmRSS``) or its peak (``VmHWM``)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _spawn() -> subprocess.Popen:
    """A new child: it imports TensorFlow at once, says so on its ``ready`` pipe, then waits for its job on stdin."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    ready, theirs = os.pipe()
    env["TLS_WORKER_READY_FD"] = str(theirs)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tlcore.worker_process"], stdin=subprocess.PIPE, env=env,
                                cwd=_ROOT, text=True, start_new_session=True, pass_fds=(theirs,))
    finally:
        os.close(theirs)
    proc.ready_fd = ready
    return proc


def is_ready(proc: subprocess.Popen, timeout: float = 0.0) -> bool:
    """True once the child has imported TensorFlow (waits up to ``timeout`` seconds)."""
    if getattr(proc, "ready_fd", None) is None:
        return getattr(proc, "was_ready", False)
    if not select.select([proc.ready_fd], [], [], timeout)[0]:
        return False
    proc.was_ready = bool(os.read(proc.ready_fd, 1))
    _close_ready(proc)
    return proc.was_ready


def _close_ready(proc: subprocess.Popen) -> None:
    fd, proc.ready_fd = getattr(proc, "ready_fd", None), None
    if fd is not None:
        os.close(fd)


def main() -> int:
    """A child's body: import the engine (the slow part, done before the job comes), read the job, train."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl+C reaches the server, which asks for a Stop
    from . import runner  # noqa: F401 - TensorFlow and the engine, imported while the child waits

    fd = os.environ.pop("TLS_WORKER_READY_FD", None)
    if fd:
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass                                     # the server took this spare before it was ready
    line = sys.stdin.readline()
    if not line.strip():
        return 0                                     # the server closed the pipe: nothing to train
    job = json.loads(line)
    run_in_worker(job["workspace"], job["run_id"], parent=job.get("parent"))
    return 0


class ProcessExecutor:
    """Runs train in child processes; ``warm`` spares are kept ready; ``memory_mb`` caps each (0 = no cap)."""

    name = "process"

    def __init__(self, warm: int | None = None, memory_mb: int | None = None) -> None:
        self.warm = settings.warm_workers() if warm is None else warm
        self.memory_mb = settings.max_run_memory_mb() if memory_mb is None else memory_mb
        self._lock = threading.Lock()
        self._spares: list[tuple] = []               # (process, the environment it was started with)
        self._closed = False
        self.top_up()

    # -- spares -------------------------------------------------------------------------------------------
    def top_up(self) -> None:
        """Start spares until ``warm`` are ready (each imports TensorFlow in the background)."""
        with self._lock:
            self._spares = [s for s in self._spares if s[0].poll() is None]
            while not self._closed and len(self._spares) < self.warm:
                self._spares.append((_spawn(), dict(os.environ)))

    def wait_ready(self, timeout: float) -> bool:
        """Block until every spare has imported TensorFlow (or ``timeout``); True if they all have."""
        deadline = time.monotonic() + timeout
        with self._lock:
            spares = [proc for proc, _ in self._spares]
        return all(is_ready(p, max(0.0, deadline - time.monotonic())) for p in spares)

    def _take_spare(self) -> subprocess.Popen | None:
        """A spare started with today's environment (one started before a change is discarded)."""
        with self._lock:
            while self._spares:
                proc, env = self._spares.pop(0)
                if proc.poll() is None and env == dict(os.environ):
                    return proc
                _discard(proc)
        return None

    def start(self, workspace: str, run_id: str) -> tuple[subprocess.Popen, bool]:
        """A child training ``run_id`` (a spare when one is ready) and whether it was warm."""
        job = json.dumps({"workspace": str(workspace), "run_id": run_id, "parent": os.getpid()}) + "\n"
        for proc, warm in ((self._take_spare(), True), (None, False)):
            proc = proc or _spawn()
            try:
                proc.stdin.write(job)
                proc.stdin.close()
                warm = warm and is_ready(proc)            # a spare still importing saves only part of the wait
                _close_ready(proc)
                return proc, warm
            except OSError:                         # the spare died meanwhile: start a fresh child
                _discard(proc)
        raise RuntimeError("could not start a training process")

    # -- one run ------------------------------------------------------------------------------------------
    def run(self, store: RunStore, run_id: str, stop: threading.Event) -> RunState:
        """Train ``run_id`` in a child and wait for it; the outcome goes into the run store."""
        run_dir = store.run_dir(run_id)
        store.set_state(run_id, RunState.RUNNING)
        proc, warm = self.start(store.workspace, run_id)
        started = time.time()
        write_worker_json(run_dir, executor=self.name, warm=warm, **server_fields(proc.pid))
        if not warm:
            store.append_event(run_id, "phase", phase="load",
                               message="Starting the training process (loading TensorFlow)")
        over, peak, relay = None, 0.0, StopRelay(store, run_id, run_dir, stop)
        while _running(proc):
            relay.poll()
            rss = rss_mb(proc.pid)
            peak = max(peak, rss)
            if self.memory_mb and rss > self.memory_mb:
                over = self.memory_mb
                proc.kill()
                break
        proc.wait()
        self.top_up()              # now, not at the start: a spare importing TensorFlow would slow this run down
        write_worker_json(run_dir, ended=time.time(), exitcode=proc.returncode, peak_rss_mb=round(peak, 1),
                          seconds=round(time.time() - started, 2))
        if over is None and proc.returncode == 0:
            state = apply_outcome(store, run_id)
            if state is not None:
                return state
        return fail_dead_worker(store, run_id, proc.returncode, over)

    def close(self) -> None:
        """Stop the spares (running children are stopped through their runs' Stop)."""
        with self._lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for proc, _ in spares:
            _discard(proc)


def _running(proc: subprocess.Popen) -> bool:
    """Wait up to WATCH_S for the child to end; True while it still runs."""
    try:
        proc.wait(WATCH_S)
    except subprocess.TimeoutExpired:
        return True
    return False


def _discard(proc: subprocess.Popen) -> None:
    """End a spare: closing its stdin ends it; one still importing is killed."""
    _close_ready(proc)
    try:
        proc.stdin.close()
    except (OSError, AttributeError):
        pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


if __name__ == "__main__":
    sys.exit(main())
