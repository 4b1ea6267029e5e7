"""The training queue: a bounded number of worker threads, a fair FIFO queue, and stop flags."""
from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from .runs import RunConfig, RunState, RunStore
from .settings import max_concurrent_jobs, workspace_dir


class JobManager:
    """Runs training jobs off the caller's thread. Workers never touch the UI; they write events to the store."""

    def __init__(self, store: RunStore, max_concurrent: int | None = None) -> None:
        self.store = store
        self.max_concurrent = max_concurrent or max_concurrent_jobs()
        self._queue: deque[str] = deque()
        self._cv = threading.Condition()
        self._stops: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._running: set[str] = set()
        self._closed = False
        self.recovered = store.recover_interrupted()
        self._workers = [threading.Thread(target=self._work, name=f"tls-worker-{i}", daemon=True)
                         for i in range(self.max_concurrent)]
        for worker in self._workers:
            worker.start()

    def submit(self, config: RunConfig, owner: str = "local") -> str:
        """Queue a run; returns its id at once."""
        config.validate()
        run_id = self.store.create(config, owner)
        with self._cv:
            self._stops[run_id] = threading.Event()
            self._done[run_id] = threading.Event()
            self._queue.append(run_id)
            self.store.append_event(run_id, "queued", position=len(self._queue))
            self._cv.notify()
        return run_id

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                run_id = self._queue.popleft()
                self._running.add(run_id)
            try:
                from .runner import execute_run

                execute_run(self.store, run_id, self._stops[run_id])
            except Exception as exc:  # the worker survives whatever happens; the run says why it failed
                self.store.set_state(run_id, RunState.FAILED,
                                     error=f"The training worker failed to start this run ({type(exc).__name__}); "
                                           "try again, and report it if it repeats.")
            finally:
                with self._cv:
                    self._running.discard(run_id)
                    self._done[run_id].set()

    def restart(self, run_id: str, owner: str = "local") -> str:
        """Queue a new run with the same settings as ``run_id`` (e.g. one interrupted by a server restart)."""
        return self.submit(self.store.config(run_id), owner)

    def stop(self, run_id: str) -> None:
        """Stop a run: a queued one leaves the queue; a running one stops within one batch."""
        self.store.request_stop(run_id)
        with self._cv:
            if run_id in self._stops:
                self._stops[run_id].set()
            if run_id in self._queue:
                self._queue.remove(run_id)
                self.store.set_state(run_id, RunState.STOPPED, error="Stopped while waiting in the queue.")
                self.store.append_event(run_id, "stopped", message="Stopped while waiting in the queue.")
                self._done[run_id].set()

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when the run is not waiting."""
        with self._cv:
            try:
                return self._queue.index(run_id) + 1
            except ValueError:
                return None

    def running(self) -> list[str]:
        with self._cv:
            return sorted(self._running)

    def wait(self, run_id: str, timeout: float | None = None) -> RunState:
        """Block until the run ends (or ``timeout``); returns its state."""
        done = self._done.get(run_id)
        if done is not None:
            done.wait(timeout)
        return self.store.get(run_id).state

    def shutdown(self) -> None:
        with self._cv:
            self._closed = True
            for event in self._stops.values():
                event.set()
            self._cv.notify_all()


_MANAGERS: dict[Path, JobManager] = {}
_MANAGERS_LOCK = threading.Lock()


def get_manager(workspace: str | Path | None = None) -> JobManager:
    """The process-wide manager for a workspace; created once, which also marks lost runs as interrupted."""
    path = Path(workspace or workspace_dir()).resolve()
    with _MANAGERS_LOCK:
        if path not in _MANAGERS:
            _MANAGERS[path] = JobManager(RunStore(path))
        return _MANAGERS[path]
