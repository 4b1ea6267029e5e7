"""Scale-out: runs train as Ray tasks on a cluster (``TLS_RAY_ADDRESS``; Ray is optional, requirements-ray.txt).

The queue and its fairness rule stay in the server's :class:`tlcore.jobs.JobManager`: it sends at most
``TLS_MAX_JOBS`` runs to the cluster, first come first served between people, one per person, and Ray places each
task on a node with the CPUs (``TLS_RAY_CPUS``, default 1) and GPUs (``TLS_RAY_GPUS``, or one per GPU the run's
``devices`` name) it asks for.

**Shared filesystem.** Every node mounts the server's workspace at the same path (for example an NFS export of
the server's local disk), and has the same code and virtual environment. A task reads its run folder's
``config.json`` and data copy there, writes its events, model and ``outcome.json`` there, and reads the ``stop``
file there, exactly as a local child process does (:mod:`tlcore.worker`). Copying inputs and results instead would
move every dataset and model twice per run and lose the shared feature store, which is what makes a class's
repeated runs on one dataset cheap. ``runs.db`` is opened only by the server, on its own disk: tasks never open it.

A head that does not answer when the server starts a run is not an error for the student: the run trains here
instead (a child process), with a warning event that names the address.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from .runs import RunState, RunStore
from .settings import ray_address
from .worker import (StopRelay, apply_outcome, fail_dead_worker, host, process_start, run_in_worker,
                     server_fields, write_worker_json)

WATCH_S = 0.1
_ROOT = str(Path(__file__).resolve().parents[1])


def task_resources(config) -> dict:
    """What one run's task asks the cluster for: CPUs, and GPUs when the operator or the run's devices say so."""
    cpus = float(os.environ.get("TLS_RAY_CPUS", "1"))
    gpus = float(os.environ.get("TLS_RAY_GPUS", "0"))
    named = [d for d in (config.devices or []) if "gpu" in d.lower()]
    return {"num_cpus": cpus, "num_gpus": max(gpus, float(len(named)))}


def answers(address: str, timeout: float = 3.0) -> bool:
    """True when something listens at the cluster's ``host:port`` (``ray://host:port`` too); ``auto`` is
    left to Ray, which finds the head started on this machine."""
    if address == "auto":
        return True
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host_name, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host_name or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _train_task(workspace: str, run_id: str) -> dict:
    """The Ray task: say where it runs in worker.json, then train writing only the run folder."""
    pid = os.getpid()
    write_worker_json(Path(workspace) / "runs" / run_id, pid=pid, host=host(), start=process_start(pid))
    return run_in_worker(workspace, run_id)


class RayExecutor:
    """Sends each run to the Ray cluster at ``address`` as one task; ``fallback`` makes the local executor used
    when the cluster does not answer."""

    name = "ray"

    def __init__(self, address: str | None = None, fallback=None) -> None:
        self.address = address or ray_address() or "auto"
        self._fallback_factory = fallback
        self._fallback = None
        self._lock = threading.Lock()
        self._remote = None

    def _connect(self):
        """The remote task function, once connected to the cluster; None when it does not answer."""
        with self._lock:
            if self._remote is not None:
                return self._remote
            if not answers(self.address):
                return None                         # ray.init would wait minutes for a head that is not there
            try:
                import ray

                if not ray.is_initialized():
                    ray.init(address=self.address, log_to_driver=False, ignore_reinit_error=True,
                             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                                 p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}})
                self._remote = ray.remote(max_retries=0)(_train_task)
            except Exception:                       # not installed, refused, timed out: train here instead
                self._remote = None
            return self._remote

    def _local(self):
        with self._lock:
            if self._fallback is None and self._fallback_factory is not None:
                self._fallback = self._fallback_factory()
            return self._fallback

    def run(self, store: RunStore, run_id: str, stop: threading.Event) -> RunState:
        """Train ``run_id`` as a Ray task and wait for it; the outcome goes into the run store."""
        remote = self._connect()
        if remote is None:
            local = self._local()
            if local is None:
                message = f"The cluster at {self.address} does not answer: ask the operator to start it, then retry."
                store.set_state(run_id, RunState.FAILED, error=message)
                store.append_event(run_id, "failed", message=message)
                return RunState.FAILED
            store.append_event(run_id, "warning", message=f"The cluster at {self.address} does not answer: "
                                                          "training here instead.")
            return local.run(store, run_id, stop)
        import ray

        run_dir = store.run_dir(run_id)
        me = server_fields(os.getpid())
        write_worker_json(run_dir, executor=self.name, parent=me["parent"], parent_host=me["parent_host"],
                          parent_start=me["parent_start"], address=self.address)
        store.set_state(run_id, RunState.RUNNING)
        started = time.time()
        ref = remote.options(**task_resources(store.config(run_id))).remote(str(store.workspace), run_id)
        relay, error = StopRelay(store, run_id, run_dir, stop), None
        while not ray.wait([ref], timeout=WATCH_S)[0]:
            relay.poll()
        try:
            ray.get(ref)
        except Exception as exc:                    # the task's worker or node died, or Ray's OOM killer struck
            error = exc
        write_worker_json(run_dir, ended=time.time(), seconds=round(time.time() - started, 2),
                          error=type(error).__name__ if error else None)
        if error is None:
            state = apply_outcome(store, run_id)
            if state is not None:
                return state
        oom = type(error).__name__ == "OutOfMemoryError"
        return fail_dead_worker(store, run_id, -9 if oom else 1)

    def close(self) -> None:
        """Leave the cluster (this process's connection) and close the local fallback."""
        if self._remote is not None:
            import ray

            ray.shutdown()
            self._remote = None
        if self._fallback is not None:
            self._fallback.close()
