"""The data check is a task of the training queue (issue 12): it waits for a slot behind the jobs queued before it,
follows the one-job-per-person rule, says its place in the queue, and stops on request."""
from __future__ import annotations

import threading

import pytest

from helpers import write_colour_images
from tlcore import audit_jobs
from tlcore import workspace as ws
from tlcore.audit import AuditOptions
from tlcore.jobs import JobManager, get_manager
from tlcore.runs import RunStore

WAIT = 120


class Blocker:
    """A task that says when it started and then holds its slot until released (or stopped)."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, stop: threading.Event) -> None:
        self.log.append(self.name)
        self.started.set()
        while not (self.release.wait(0.05) or stop.is_set()):
            pass


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(RunStore(tmp_path / "ws"), max_concurrent=2, executor="thread")
    yield jobs
    jobs.shutdown()


def test_tasks_take_slots_first_come_first_served_and_one_per_person(manager):
    log: list[str] = []
    ann1, ann2, bob = Blocker(log, "ann1"), Blocker(log, "ann2"), Blocker(log, "bob")
    assert manager.submit_task("task:ann1", ann1, "ann")
    assert ann1.started.wait(WAIT)
    assert manager.submit_task("task:ann2", ann2, "ann")
    assert manager.submit_task("task:bob", bob, "bob")
    assert bob.started.wait(WAIT)                       # the free slot goes to bob: ann already has a job
    assert manager.queue_position("task:ann2") == 1 and log == ["ann1", "bob"]
    assert not manager.submit_task("task:ann2", ann2, "ann")     # already waiting: not queued twice
    assert manager.running() == []                      # tasks are not training runs
    ann1.release.set()
    assert ann2.started.wait(WAIT)
    for task in (ann2, bob):
        task.release.set()
    manager.wait("task:ann2", WAIT)
    manager.wait("task:bob", WAIT)
    assert log == ["ann1", "bob", "ann2"]


def test_a_waiting_task_stops_without_running_and_a_failing_task_frees_its_slot(tmp_path):
    manager = JobManager(RunStore(tmp_path / "ws"), max_concurrent=1, executor="thread")
    try:
        log: list[str] = []
        first, waiting, after = Blocker(log, "first"), Blocker(log, "waiting"), Blocker(log, "after")
        manager.submit_task("task:first", first, "ann")
        assert first.started.wait(WAIT)
        manager.submit_task("task:waiting", waiting, "bob")
        manager.stop("task:waiting")
        assert manager.queue_position("task:waiting") is None
        manager.stop("task:first")                       # a running task is told through its event
        assert manager.wait("task:first", WAIT) is None

        def broken(stop: threading.Event) -> None:
            raise RuntimeError("boom")

        manager.submit_task("task:broken", broken, "ann")
        manager.wait("task:broken", WAIT)
        manager.submit_task("task:after", after, "bob")
        assert after.started.wait(WAIT)                  # the slot survived the failure
        after.release.set()
        manager.wait("task:after", WAIT)
        assert log == ["first", "after"]
        with pytest.raises(ValueError, match="task:"):
            manager.submit_task("check", broken)
    finally:
        manager.shutdown()


@pytest.fixture
def colours(tmp_path, monkeypatch):
    """A small imported dataset in a workspace of its own, checked with a random-weights backbone at 32 px."""
    from tlcore.data import from_folder
    from tlcore.dataset_imports import _import

    ws_dir = tmp_path / "ws"
    (ws_dir / "data").mkdir(parents=True)
    owner = "u:" + "c" * 24
    src = write_colour_images(tmp_path / "src", per_class=6)
    info = _import(owner, "colours", "server", lambda dest: from_folder(src, dest), ws_dir)
    return owner, info, ws_dir


OPTIONS = AuditOptions(backbone="mobilenet_025", weights="none", image_size=32)


def test_the_check_waits_behind_a_job_of_another_person_and_says_its_place(colours):
    owner, info, ws_dir = colours
    manager = get_manager(ws_dir)
    slots = [Blocker([], f"other{i}") for i in range(manager.max_concurrent)]
    for i, blocker in enumerate(slots):               # every slot busy with someone else's job
        manager.submit_task(f"task:other{i}", blocker, f"other{i}")
        assert blocker.started.wait(WAIT)
    ws.start_check(owner, info.id, workspace=ws_dir, options=OPTIONS)
    status = ws.check_status(info.id)
    assert status["state"] == "waiting" and status["position"] == 1
    slots[0].release.set()
    assert audit_jobs.wait_check(info.id, WAIT)["state"] == "done"
    assert ws.load_check(owner, info.id, workspace=ws_dir)["about"]["images"] == info.n_images
    for blocker in slots:
        blocker.release.set()


def test_stopping_a_check_ends_it_and_keeps_the_last_result(colours, monkeypatch):
    owner, info, ws_dir = colours
    ws.start_check(owner, info.id, workspace=ws_dir, options=OPTIONS)
    assert audit_jobs.wait_check(info.id, WAIT)["state"] == "done"
    first = ws.load_check(owner, info.id, workspace=ws_dir)
    real = audit_jobs.load_dataset

    def stopped_while_running(*args, **kwargs):        # Stop pressed once the check is under way
        assert ws.check_status(info.id)["state"] == "running"
        ws.stop_check(info.id)
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_jobs, "load_dataset", stopped_while_running)
    ws.start_check(owner, info.id, workspace=ws_dir, options=AuditOptions(backbone="mobilenet_025",
                                                                          weights="none", image_size=48))
    assert audit_jobs.wait_check(info.id, WAIT)["state"] == "stopped"
    assert ws.load_check(owner, info.id, workspace=ws_dir) == first
