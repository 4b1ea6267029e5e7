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

**One run over several machines** (``workers`` above 1 in the run's config): the task starts Ray Train's
``TensorflowTrainer`` with that many workers, each asking for the resources above. Ray Train sets ``TF_CONFIG`` on
each, so the normal run code builds a ``MultiWorkerMirroredStrategy`` over all of them. Rank 0, the chief, trains in
the run folder; the others train the same steps in a scratch folder beside it, thrown away at the end (every worker
must run every step and save, or the others wait for it). All of them watch the run's stop file and agree on the
batch they stop after (:class:`tlcore.callbacks.StopVote`).

**Faults.** A head that does not answer when the server starts a run is not an error for the student: the run
trains here instead (a child process), with a warning event that names the address. A node that dies while it
trains a run fails the run with :data:`NODE_SENTENCE`: at once when its processes die (Ray fails the task), and
within a second of the head declaring it dead when the machine stops answering with its processes alive (power,
network: Ray alone would wait for that task forever, so the server asks the head once a second, :func:`lost_node`;
the head's health checks take about a minute with Ray's defaults). Tasks are never retried, so a run never trains
twice behind the student's back, and the run's stop file is written, so a worker that was only cut off stops at
its next batch.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import threading
import time
import traceback
from pathlib import Path

from .artifacts import read_json
from .runs import RunState, RunStore
from .settings import ray_address
from .worker import (OUTCOME, MEMORY_SENTENCE, WORKER, FolderStore, StopRelay, apply_outcome, fail_dead_worker, host,
                     process_start, request_folder_stop, run_in_worker, server_fields, write_worker_json)

WATCH_S = 0.1
NODE_CHECK_S = 1.0      # how often the server asks the head whether the nodes training a run are still alive
LINGER_S = 60.0         # a run over several workers whose chief has finished: how long the others may take to end
_ROOT = str(Path(__file__).resolve().parents[1])
NODE_SENTENCE = ("The machine training this run stopped answering (its Ray node died): restart the run with the same "
                 "settings from the Train page.")
RESOURCES_SENTENCE = ("The cluster does not have the CPUs or GPUs for this many workers: ask for fewer workers, or "
                      "ask the operator to add machines.")
NO_TRAIN_SENTENCE = ("Training one run over several workers needs Ray Train on the cluster: install "
                     "requirements-ray.txt on every node, or set workers to 1.")
# Ray's words for a worker, actor or node that is gone (ray.exceptions, ray.train)
_LOST = {"NodeDiedError", "WorkerCrashedError", "RayActorError", "ActorDiedError", "ActorUnavailableError",
         "LocalRayletDiedError", "OwnerDiedError", "ObjectLostError", "PreemptionError",
         "WorkerHealthCheckFailedError", "WorkerHealthCheckTimeoutError"}
_SHORT = {"InsufficientClusterResourcesError", "WorkerGroupStartupTimeoutError", "TaskUnschedulableError",
          "ActorUnschedulableError"}


class RunFailedOnWorker(Exception):
    """A worker of a run over several whose run failed: raised so that Ray Train ends the other workers, which
    would otherwise wait for it in their next all-reduce. Its message is the run's sentence."""


def task_resources(config) -> dict:
    """What one run's task (or each of its workers) asks the cluster for: CPUs, and GPUs when the operator or the
    run's devices say so."""
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


def _causes(error: BaseException | None) -> list[BaseException]:
    """``error`` and what it wraps: a task's cause, a worker group's failures, a health check's, a controller's."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        exc = todo.pop()
        if exc is None or any(exc is s for s in seen) or len(seen) > 50:
            continue
        seen.append(exc)
        todo += [getattr(exc, name, None) for name in ("cause", "__cause__", "health_check_failure",
                                                      "controller_failure", "_base_exc")]
        todo += list((getattr(exc, "worker_failures", None) or {}).values())
    return seen


def death_message(error: BaseException | None) -> str | None:
    """The plain sentence for a Ray failure (a node gone, too few resources, out of memory, a worker's own
    sentence); None when it is none of those (the caller's generic sentence)."""
    causes = _causes(error)
    for exc in causes:
        if isinstance(exc, RunFailedOnWorker) and str(exc):
            return str(exc)
    names = {cls.__name__ for exc in causes for cls in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        return MEMORY_SENTENCE
    if names & _SHORT:
        return RESOURCES_SENTENCE
    if names & _LOST:
        return NODE_SENTENCE
    return None


def _node_id() -> str | None:
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:          # outside a Ray worker (a test calling the function directly)
        return None


def _train_task(workspace: str, run_id: str) -> dict:
    """The Ray task: say where it runs in worker.json, then train writing only the run folder."""
    pid = os.getpid()
    write_worker_json(Path(workspace) / "runs" / run_id, pid=pid, host=host(), start=process_start(pid),
                      node=_node_id())
    return run_in_worker(workspace, run_id)


def _scratch(workspace: str, run_id: str, rank: int) -> str:
    """A helper worker's run: its own folder beside the run's (``<id>.rank<k>``, so the workspace's feature store
    is shared) with the run's config and a dataset that names the run's own image files."""
    from .data import Dataset

    store = FolderStore(workspace)
    scratch_id = f"{run_id}.rank{rank}"
    run_dir, scratch = store.run_dir(run_id), store.run_dir(scratch_id)
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "config.json", scratch / "config.json")
    for name in ("data", "target_data"):
        if (run_dir / name / "dataset.json").is_file():
            (scratch / name).mkdir(exist_ok=True)
            dataclasses.replace(Dataset.load(run_dir / name), root=scratch / name).save()
    return scratch_id


def _rank_loop(job: dict) -> None:
    """One Ray Train worker of a run over several: rank 0 trains in the run folder, the others in a scratch one."""
    os.environ.pop("TF_USE_LEGACY_KERAS", None)   # Ray Train sets it for tf.keras 2; the engine is Keras 3
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    workspace, run_id = job["workspace"], job["run_id"]
    run_dir = FolderStore(workspace).run_dir(run_id)
    if rank == 0:
        pid = os.getpid()
        write_worker_json(run_dir, chief={"pid": pid, "host": host(), "start": process_start(pid), "node": _node_id()})
        outcome = run_in_worker(workspace, run_id)
    else:
        scratch_id, pid = _scratch(workspace, run_id, rank), os.getpid()
        write_worker_json(FolderStore(workspace).run_dir(scratch_id), pid=pid, host=host(), start=process_start(pid),
                          node=_node_id(), rank=rank)
        try:
            outcome = run_in_worker(workspace, scratch_id, stop_dir=run_dir)
        finally:
            shutil.rmtree(FolderStore(workspace).run_dir(scratch_id), ignore_errors=True)
    if outcome.get("state") == RunState.FAILED.value:
        raise RunFailedOnWorker(outcome.get("error") or "")


def _share_data(workspace: str, run_id: str) -> None:
    """Import the run's data into its folder once, before its workers start, so that all of them use one split."""
    from .run_data import resolve_dataset

    store = FolderStore(workspace)
    try:
        config = store.config(run_id)
        for target in (False, True):
            resolve_dataset(config, store.run_dir(run_id), Path(workspace), target=target)
    except Exception:          # bad data: the chief's run says so in its own words
        pass


def _train_over_workers(workspace: str, run_id: str, workers: int, resources: dict) -> dict:
    """The Ray task of a run over ``workers`` workers: Ray Train's TensorflowTrainer runs :func:`_rank_loop` on each
    (it sets their TF_CONFIG); returns the chief's outcome, written as failed with a sentence when training did
    not end by itself (a node died, a worker's run failed, too few resources)."""
    run_dir = FolderStore(workspace).run_dir(run_id)
    pid = os.getpid()
    write_worker_json(run_dir, pid=pid, host=host(), start=process_start(pid), node=_node_id(), workers=workers)
    _share_data(workspace, run_id)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"        # the workers keep the working directory
    storage = Path(workspace) / "tmp" / "ray_train"     # Ray Train's own folder (nothing is checkpointed there)
    try:
        try:
            from ray.train import FailureConfig, RunConfig as TrainConfig, ScalingConfig
            from ray.train.tensorflow import TensorflowTrainer
        except ImportError as exc:                   # ray without its [train] extra on this node
            raise RunFailedOnWorker(NO_TRAIN_SENTENCE) from exc
        gpus = float(resources.get("num_gpus") or 0)
        per_worker = {"CPU": float(resources.get("num_cpus", 1)), **({"GPU": gpus} if gpus else {})}
        trainer = TensorflowTrainer(
            _rank_loop, train_loop_config={"workspace": workspace, "run_id": run_id},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus > 0, resources_per_worker=per_worker),
            run_config=TrainConfig(name=f"tls-{run_id}", storage_path=str(storage),
                                   failure_config=FailureConfig(max_failures=0, max_preemption_failures=0)))
        trainer.fit()
    except Exception as exc:                         # never retried: the run fails with the sentence
        if read_json(run_dir / OUTCOME) is None:
            message = death_message(exc) or (f"Training over {workers} workers failed ({type(exc).__name__}): "
                                             "start the run again, and report it if it repeats.")
            with open(run_dir / "error.log", "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
            store = FolderStore(workspace)
            store.set_state(run_id, RunState.FAILED, error=message)
            store.append_event(run_id, "failed", message=message)
    finally:
        shutil.rmtree(storage / f"tls-{run_id}", ignore_errors=True)
    return read_json(run_dir / OUTCOME) or {}


def nodes_of(run_dir: Path) -> set[str]:
    """The Ray nodes a run's processes run on: its worker.json's (the task's, the chief's) and its helpers'."""
    found = set()
    for path in [Path(run_dir) / WORKER, *Path(run_dir).parent.glob(f"{Path(run_dir).name}.rank*/{WORKER}")]:
        info = read_json(path) or {}
        found |= {n for n in (info.get("node"), (info.get("chief") or {}).get("node")) if n}
    return found


def lost_node(run_dir: Path) -> bool:
    """True when the head has declared dead a node that trains the run. Ray fails the task itself when the node's
    processes die, but not when the machine stops answering with them alive (power, network, a frozen machine):
    the head's health checks mark the node dead, and the task would wait for its worker forever."""
    import ray

    nodes = nodes_of(run_dir)
    if not nodes:
        return False
    try:
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    except Exception:          # the head does not answer either: Ray's own error ends the task
        return False
    return bool(nodes - alive)


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
        """The remote task functions (one run, one run over several workers), once connected to the cluster;
        None when it does not answer."""
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
                self._remote = (ray.remote(max_retries=0)(_train_task),
                                ray.remote(max_retries=0, num_cpus=0)(_train_over_workers))
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

        run_dir, config = store.run_dir(run_id), store.config(run_id)
        me = server_fields(os.getpid())
        write_worker_json(run_dir, executor=self.name, parent=me["parent"], parent_host=me["parent_host"],
                          parent_start=me["parent_start"], address=self.address, workers=config.workers)
        store.set_state(run_id, RunState.RUNNING)
        started, workspace = time.time(), str(Path(store.workspace).resolve())
        if config.workers > 1:
            ref = remote[1].remote(workspace, run_id, config.workers, task_resources(config))
        else:
            ref = remote[0].options(**task_resources(config)).remote(workspace, run_id)
        relay, error, chief_done, lost = StopRelay(store, run_id, run_dir, stop), None, None, False
        checked = time.monotonic()
        while not ray.wait([ref], timeout=WATCH_S)[0]:
            relay.poll()
            if config.workers > 1 and chief_done is None and (run_dir / OUTCOME).exists():
                chief_done = time.monotonic()
            if chief_done is not None and time.monotonic() - chief_done > LINGER_S:
                ray.cancel(ref, force=True)         # a worker still waits for the chief: end them all
                break
            if time.monotonic() - checked > NODE_CHECK_S:
                checked = time.monotonic()
                if lost_node(run_dir):
                    lost = True
                    ray.cancel(ref, force=True)     # not ray.get: it would wait for the silent node
                    break
        if not lost:
            try:
                ray.get(ref)
            except Exception as exc:                # the task's worker or node died, or Ray's OOM killer struck
                error = exc
        write_worker_json(run_dir, ended=time.time(), seconds=round(time.time() - started, 2),
                          error="NodeDiedError" if lost else type(error).__name__ if error else None)
        for scratch in run_dir.parent.glob(f"{run_id}.rank*"):    # a helper worker that died left its folder
            shutil.rmtree(scratch, ignore_errors=True)
        if error is None and not lost:
            state = apply_outcome(store, run_id)
            if state is not None:
                return state
        request_folder_stop(run_dir)                # a worker cut off from Ray but alive stops at its next batch
        message = NODE_SENTENCE if lost else death_message(error)
        return fail_dead_worker(store, run_id, -9 if message == MEMORY_SENTENCE else 1, message=message)

    def close(self) -> None:
        """Leave the cluster (this process's connection) and close the local fallback."""
        if self._remote is not None:
            import ray

            ray.shutdown()
            self._remote = None
        if self._fallback is not None:
            self._fallback.close()
