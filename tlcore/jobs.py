"""The training queue: a bounded number of slots, a fair FIFO queue, and stop flags.

Fair means first come, first served between people, and one training run per person at a time: a student who
queues a comparison of five runs does not take every slot, and the runs of one comparison train one after another,
so their times compare. A slot stays free rather than start a second run of someone already training.

Each slot is a thread of this process that hands its run to an executor (:mod:`tlcore.worker`): by default a child
process per run (:mod:`tlcore.worker_process`), a Ray task with ``TLS_RAY_ADDRESS`` (:mod:`tlcore.worker_ray`), or
the slot thread itself (``TLS_EXECUTOR=thread``). The queue, the fairness rule and ``runs.db`` stay here.

The queue also takes *tasks*, work that is not a training run but wants a slot and the same fairness (the data
check, :mod:`tlcore.audit_jobs`): a callable run in the slot thread, queued and stopped like a run."""
from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from .runs import RunConfig, RunState, RunStore
from .settings import executor_kind, max_concurrent_jobs, workspace_dir
from .worker import ThreadExecutor, stop_orphans


def make_executor(kind: str | None = None, warm: int | None = None):
    """The executor for ``kind`` (``process``, ``thread`` or ``ray``; default: the operator's ``TLS_EXECUTOR``)."""
    kind = kind or executor_kind()
    if kind == "thread":
        return ThreadExecutor()
    if kind == "ray":
        from .worker_ray import RayExecutor

        return RayExecutor(fallback=lambda: make_executor("process", warm))
    from .worker_process import ProcessExecutor

    return ProcessExecutor(warm=warm)

log = logging.getLogger("tlcore")

TASK = "task:"      # the prefix of a queued task's id (run ids are hex)


class JobManager:
    """Runs training jobs off the caller's thread. Workers never touch the UI; they write events to the store.

    ``executor`` is where runs train (an executor object, or its kind: ``process``, ``thread``, ``ray``);
    ``warm`` is how many ready training processes the process executor keeps (default ``TLS_WARM_WORKERS``)."""

    def __init__(self, store: RunStore, max_concurrent: int | None = None, executor=None,
                 warm: int | None = None) -> None:
        self.store = store
        self.max_concurrent = max_concurrent or max_concurrent_jobs()
        self._queue: deque[str] = deque()
        self._owners: dict[str, str] = {}
        self._cv = threading.Condition()
        self._stops: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._running: set[str] = set()
        self._tasks: dict[str, Callable[[threading.Event], None]] = {}
        self._closed = False
        orphans = stop_orphans(store)                  # workers of a server that died: stopped before the sweep
        self.recovered = store.recover_interrupted()
        self.recovered += [r for r in orphans if r not in self.recovered]
        self.executor = executor if executor is not None and not isinstance(executor, str) else \
            make_executor(executor, warm)
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
            self._owners[run_id] = owner
            self._queue.append(run_id)
            self.store.append_event(run_id, "queued", position=len(self._queue))
            self._cv.notify_all()
        return run_id

    def submit_task(self, task_id: str, work: Callable[[threading.Event], None], owner: str = "local") -> bool:
        """Queue ``work(stop)`` under ``task_id`` (``"task:…"``, e.g. ``"task:check:<dataset id>"``) behind everyone's
        runs and tasks; False when that task is already waiting or under way. ``work`` reports its own outcome."""
        if not task_id.startswith(TASK):
            raise ValueError(f"A task's id starts with {TASK!r}: {task_id!r}")
        with self._cv:
            if task_id in self._tasks:
                return False
            self._tasks[task_id] = work
            self._stops[task_id] = threading.Event()
            self._done[task_id] = threading.Event()
            self._owners[task_id] = owner
            self._queue.append(task_id)
            self._cv.notify_all()
        return True

    def _execute(self, job_id: str) -> None:
        """Run a queued run (through the executor) or task (in this slot thread)."""
        task = self._tasks.get(job_id)
        if task is not None:
            try:
                task(self._stops[job_id])
            except Exception:  # noqa: BLE001 - a task reports its own outcome; the slot lives on
                log.exception("queued task %s failed", job_id)
            return
        try:
            self.executor.run(self.store, job_id, self._stops[job_id])
        except Exception as exc:  # the worker survives whatever happens; the run says why it failed
            self.store.set_state(job_id, RunState.FAILED,
                                 error=f"The training worker failed to start this run ({type(exc).__name__}); "
                                       "try again, and report it if it repeats.")

    def _next(self) -> str | None:
        """The first queued run whose owner has nothing training (call with the lock held)."""
        busy = {self._owners.get(r) for r in self._running}
        return next((r for r in self._queue if self._owners.get(r) not in busy), None)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (run_id := self._next()) is None:
                    self._cv.wait()
                if self._closed:
                    return
                self._queue.remove(run_id)
                self._running.add(run_id)
            try:
                self._execute(run_id)
            finally:
                with self._cv:
                    self._running.discard(run_id)
                    self._owners.pop(run_id, None)
                    self._tasks.pop(run_id, None)
                    self._done[run_id].set()
                    self._cv.notify_all()           # the owner's next run may start now

    def restart(self, run_id: str, owner: str = "local") -> str:
        """Queue a new run with the same settings as ``run_id`` (e.g. one interrupted by a server restart)."""
        return self.submit(self.store.config(run_id), owner)

    def stop(self, run_id: str) -> None:
        """Stop a run or task: a queued one leaves the queue; a running one stops within one batch."""
        task = run_id.startswith(TASK)              # a task has no run folder or row to mark
        if not task:
            self.store.request_stop(run_id)
        with self._cv:
            if run_id in self._stops:
                self._stops[run_id].set()
            if run_id in self._queue:
                self._queue.remove(run_id)
                self._owners.pop(run_id, None)
                self._tasks.pop(run_id, None)
                if not task:
                    self.store.set_state(run_id, RunState.STOPPED, error="Stopped while waiting in the queue.")
                    self.store.append_event(run_id, "stopped", message="Stopped while waiting in the queue.")
                self._done[run_id].set()

    def queue_position(self, run_id: str) -> int | None:
        """The run's place in the queue (1 = first in line); None when it is not waiting."""
        with self._cv:
            try:
                return self._queue.index(run_id) + 1
            except ValueError:
                return None

    def stop_owner(self, owner: str) -> list[str]:
        """Stop every waiting or training run of ``owner`` (e.g. a whole comparison); returns their ids."""
        with self._cv:
            ids = [r for r in [*self._queue, *self._running] if self._owners.get(r) == owner and r not in self._tasks]
        for run_id in ids:
            self.stop(run_id)
        return ids

    def running(self) -> list[str]:
        """The runs training now (not tasks)."""
        with self._cv:
            return sorted(r for r in self._running if r not in self._tasks)

    def wait(self, run_id: str, timeout: float | None = None) -> RunState | None:
        """Block until the run or task ends (or ``timeout``); returns the run's state (None for a task)."""
        done = self._done.get(run_id)
        if done is not None:
            done.wait(timeout)
        return None if run_id.startswith(TASK) else self.store.get(run_id).state

    def shutdown(self) -> None:
        with self._cv:
            self._closed = True
            for event in self._stops.values():
                event.set()
            self._cv.notify_all()
        self.executor.close()


_MANAGERS: dict[Path, JobManager] = {}
_MANAGERS_LOCK = threading.Lock()


def get_manager(workspace: str | Path | None = None) -> JobManager:
    """The process-wide manager for a workspace; created once, which also marks lost runs as interrupted."""
    path = Path(workspace or workspace_dir()).resolve()
    with _MANAGERS_LOCK:
        if path not in _MANAGERS:
            _MANAGERS[path] = JobManager(RunStore(path))
        return _MANAGERS[path]
