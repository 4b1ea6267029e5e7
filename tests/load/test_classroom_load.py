"""Load: 8 sessions (AppTest, one per student) each upload a zip and press Start, with 2 training slots.

The classroom measurement (issue 14) is the same test with 30 students, the server's default slots and a training
process per run: ``TLS_LOAD_SESSIONS=30 TLS_LOAD_SLOTS=default TLS_LOAD_EXECUTOR=process pytest tests/load -s``.
While runs train, the Evaluate page of a finished run is rerun and timed (p50 / p95 in the report).

AppTest is not thread-safe (concurrent instances corrupt each other's session state), so the clicks are made one
session after another; each takes a few seconds, and all 8 runs are queued or training on the server at once.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from _apptools import class_zip, new_app, no_crash  # noqa: E402

from helpers import ROOT  # noqa: E402

SESSIONS = int(os.environ.get("TLS_LOAD_SESSIONS", "8"))
_SLOTS = os.environ.get("TLS_LOAD_SLOTS", "2")
EXECUTOR = os.environ.get("TLS_LOAD_EXECUTOR", "")
TINY_MODEL = {"backbone": "vgg16", "backbone_file": None, "weights": "none", "image_size": 32,
              "freeze": {"mode": "all_but_top", "n": 2, "layer": None},
              "head": {"units": 16, "dropout": 0.0, "enabled": True}}


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("TLS_WORKSPACE", "TLS_MAX_JOBS", "TLS_WARM_TF", "TLS_EXECUTOR")}
    os.environ.update(TLS_WORKSPACE=str(tmp_path_factory.mktemp("classroom")), TLS_WARM_TF="0")
    if _SLOTS != "default":
        os.environ["TLS_MAX_JOBS"] = _SLOTS
    else:
        os.environ.pop("TLS_MAX_JOBS", None)
    if EXECUTOR:
        os.environ["TLS_EXECUTOR"] = EXECUTOR
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def student(i: int) -> dict:
    """One student's session: open the app, upload a zip on the Data page, press Start on the Train page."""
    from tlcore import workspace as ws

    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    at = new_app({"u": token}, timeout=180).run()
    at.switch_page("views/data.py").run()
    no_crash(at)
    assert [u.key for u in at.get("file_uploader")], [str(e.value)[:200] for e in at.error] + [m.value[:80] for m in at.markdown][:8]
    data = class_zip({f"class{i}a": (220, 30, 30), f"class{i}b": (30, 200, 40)}, per_class=8)
    at.file_uploader(key="zip_upload").set_value((f"student{i}.zip", data, "application/zip")).run()
    no_crash(at)
    [dataset] = ws.list_datasets(owner, include_shared=False)
    ws.update_draft(owner, dataset_id=dataset.id, model=TINY_MODEL, model_title="VGG16",
                    train={"strategy": "feature_extraction", "batch_size": 8, "early_stopping": 0, "learning_rate": 1e-2})
    at.switch_page("views/train.py").run()
    no_crash(at)
    assert "epochs" in [n.key for n in at.number_input], ([str(e.value)[:300] for e in at.error + at.warning + at.info]
                                                         + [m.value[:100] for m in at.markdown][:10])
    at.number_input(key="epochs").set_value(2).run()
    at.button(key="start_button").click().run()
    no_crash(at)
    errors = [str(e.value) for e in at.error]
    return {"owner": owner, "token": token, "run": at.query_params.get("run"), "errors": errors}


def evaluate_reruns(manager, session: dict, most: int = 20) -> list[float]:
    """Seconds per rerun of the Evaluate page of ``session``'s finished run, while other runs still train."""
    at = new_app({"u": session["token"], "run": session["run"]}, timeout=180).run()
    at.switch_page("views/evaluate.py").run()
    no_crash(at)
    seconds = []
    while len(seconds) < most and any(not r.state.finished for r in manager.store.list()):
        t = time.perf_counter()
        at.run()
        seconds.append(time.perf_counter() - t)
        no_crash(at)
    return seconds


def percentiles(values: list[float]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"n": len(values), "p50": pick(0.5), "p95": pick(0.95)}


def store_state(manager, run_id: str) -> str:
    return manager.store.get(run_id).state.value


def test_eight_sessions_upload_and_train_at_once(classroom, record_property):
    from tlcore.jobs import get_manager
    from tlcore.runs import RunState

    t0 = time.time()
    sessions = [student(i) for i in range(SESSIONS)]
    submitted = time.time() - t0
    assert all(s["run"] and not s["errors"] for s in sessions), sessions
    from tlcore.settings import max_concurrent_jobs

    manager = get_manager()
    slots = manager.max_concurrent
    assert slots == (max_concurrent_jobs() if _SLOTS == "default" else int(_SLOTS))
    live = [r for r in (store_state(manager, s["run"]) for s in sessions) if r in ("queued", "running")]
    first = sessions[0]
    states = {first["run"]: manager.wait(first["run"], timeout=900)}
    page_seconds = evaluate_reruns(manager, first)          # the Evaluate page while the others train
    states.update({s["run"]: manager.wait(s["run"], timeout=1800) for s in sessions[1:]})
    total = time.time() - t0
    store = manager.store
    failures = {r: store.get(r).error for r, st in states.items() if st != RunState.DONE}
    assert not failures, failures

    records = sorted((store.get(s["run"]) for s in sessions), key=lambda r: r.created)
    for i, earlier in enumerate(records):          # FIFO: a run never starts before one queued 2+ places ahead
        for later in records[i + slots:]:
            assert earlier.started <= later.started, "queue order was not respected"
    for s in sessions:                               # isolation: each student sees their own run only
        assert [r.id for r in store.list(s["owner"])] == [s["run"]]

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = [json.loads(p.read_text()).get("peak_rss_mb") for p in store.workspace.rglob("worker.json")]
    workers = [w for w in workers if w]
    report = {"sessions": SESSIONS, "slots": slots, "executor": os.environ.get("TLS_EXECUTOR"),
              "submit_seconds": round(submitted, 1), "all_done_seconds": round(total, 1),
              "alive_when_last_submitted": len(live), "server_peak_rss_mb": round(peak_mb),
              "worker_peak_rss_mb": max(workers) if workers else None,
              "evaluate_page_seconds": percentiles(page_seconds),
              "run_seconds": [round(r.finished - r.started, 1) for r in records]}
    record_property("load", report)
    out = ROOT / "artifacts" / "load_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nload: {report}")
