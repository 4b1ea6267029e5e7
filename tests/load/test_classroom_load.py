"""Load: 8 sessions (AppTest, one per student) each upload a zip and press Start, with 2 training slots.

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
SLOTS = 2
TINY_MODEL = {"backbone": "vgg16", "backbone_file": None, "weights": "none", "image_size": 32,
              "freeze": {"mode": "all_but_top", "n": 2, "layer": None},
              "head": {"units": 16, "dropout": 0.0, "enabled": True}}


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("TLS_WORKSPACE", "TLS_MAX_JOBS", "TLS_WARM_TF")}
    os.environ.update(TLS_WORKSPACE=str(tmp_path_factory.mktemp("classroom")), TLS_MAX_JOBS=str(SLOTS),
                      TLS_WARM_TF="0")
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
    return {"owner": owner, "run": at.query_params.get("run"), "errors": errors}


def store_state(manager, run_id: str) -> str:
    return manager.store.get(run_id).state.value


def test_eight_sessions_upload_and_train_at_once(classroom, record_property):
    from tlcore.jobs import get_manager
    from tlcore.runs import RunState

    t0 = time.time()
    sessions = [student(i) for i in range(SESSIONS)]
    submitted = time.time() - t0
    assert all(s["run"] and not s["errors"] for s in sessions), sessions
    manager = get_manager()
    assert manager.max_concurrent == SLOTS
    live = [r for r in (store_state(manager, s["run"]) for s in sessions) if r in ("queued", "running")]
    states = {s["run"]: manager.wait(s["run"], timeout=900) for s in sessions}
    total = time.time() - t0
    store = manager.store
    failures = {r: store.get(r).error for r, st in states.items() if st != RunState.DONE}
    assert not failures, failures

    records = sorted((store.get(s["run"]) for s in sessions), key=lambda r: r.created)
    for i, earlier in enumerate(records):          # FIFO: a run never starts before one queued 2+ places ahead
        for later in records[i + SLOTS:]:
            assert earlier.started <= later.started, "queue order was not respected"
    for s in sessions:                               # isolation: each student sees their own run only
        assert [r.id for r in store.list(s["owner"])] == [s["run"]]

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"sessions": SESSIONS, "slots": SLOTS, "submit_seconds": round(submitted, 1),
              "all_done_seconds": round(total, 1), "alive_when_last_submitted": len(live), "peak_rss_mb": round(peak_mb),
              "run_seconds": [round(r.finished - r.started, 1) for r in records]}
    record_property("load", report)
    out = ROOT / "artifacts" / "load_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nload: {report}")
