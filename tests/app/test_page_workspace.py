"""tlcore.workspace (the per-owner dataset store) and tlcore.progress, without the UI."""
from __future__ import annotations

import os
import time

import pytest
from _apptools import XSS, class_zip

from tlcore import housekeeping, settings
from tlcore import workspace as ws
from tlcore.errors import DataError, TLError
from tlcore.progress import eta_text, status_line, summarize

ALICE = "u:" + "a" * 24
BOB = "u:" + "b" * 24


def test_owner_tokens():
    token = ws.new_owner_token()
    assert ws.is_owner_token(token) and token != ws.new_owner_token()
    assert not ws.is_owner_token("short") and not ws.is_owner_token("../../etc/passwd-aaaaaaaaaaaaaa")
    assert ws.owner_id(email="Teacher@School.org") == "user:teacher@school.org"
    with pytest.raises(TLError):
        ws.owner_id(token="bad token")


def test_zip_import_isolation_sharing_and_delete():
    info = ws.import_zip(ALICE, class_zip({"cat": (200, 0, 0), XSS: (0, 0, 200)}), "pets.zip")
    assert info.n_classes == 2 and info.n_images == 16 and len(info.id) == 24
    assert [d.id for d in ws.list_datasets(ALICE)] == [info.id]
    assert ws.list_datasets(BOB) == []
    with pytest.raises(DataError):
        ws.load_dataset(BOB, info.id)
    assert XSS in ws.load_dataset(ALICE, info.id).classes
    ws.set_dataset_shared(ALICE, info.id, True)
    assert [d.id for d in ws.list_datasets(BOB)] == [info.id]
    with pytest.raises(DataError, match="Only the person"):
        ws.delete_dataset(BOB, info.id)
    ws.delete_dataset(ALICE, info.id)
    assert ws.list_datasets(ALICE) == [] and not (ws.datasets_dir() / info.id).exists()


def test_bad_zip_leaves_nothing_behind():
    before = set(os.listdir(ws.datasets_dir()))
    with pytest.raises(DataError, match="not a valid zip"):
        ws.import_zip(ALICE, os.urandom(4000), "random.zip")
    assert set(os.listdir(ws.datasets_dir())) == before


def test_upload_limit(monkeypatch):
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 0)
    with pytest.raises(DataError, match="upload limit"):
        ws.import_zip(ALICE, b"x" * 100, "big.zip")


def test_server_folder_is_confined_to_the_data_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    for folder in (root / "birds" / "a", outside / "b"):
        folder.mkdir(parents=True)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    monkeypatch.delenv("TLS_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="turned off"):
        ws.resolve_server_path("birds")
    monkeypatch.setenv("TLS_DATA_ROOT", str(root))
    assert ws.resolve_server_path("birds") == (root / "birds").resolve()
    assert ws.resolve_server_path(str(root / "birds")) == (root / "birds").resolve()
    for bad in ("../outside", "escape", "escape/b", str(outside), "birds/../../outside", "~"):
        with pytest.raises(DataError, match="outside"):
            ws.resolve_server_path(bad)
    with pytest.raises(DataError, match="There is no"):
        ws.resolve_server_path("nothing-here")
    assert "escape" not in ws.list_server_folders() and "birds" in ws.list_server_folders()


def test_hand_built_classes_and_csv():
    from _apptools import png_bytes

    files = {"ripe": [(f"r{i}.png", png_bytes((200, 0, 0), seed=i)) for i in range(4)],
             "unripe": [(f"u{i}.png", png_bytes((0, 200, 0), seed=i)) for i in range(4)]}
    info = ws.import_files(ALICE, files, val_split=0.25, test_split=0.25)
    assert info.n_classes == 2 and info.n_images == 8
    with pytest.raises(DataError, match="same name"):
        ws.import_files(ALICE, {"a": files["ripe"], " a ": files["unripe"]})
    csv = "path,label,colour\n" + "".join(f"photos/r{i}.png,ripe,red\nu{i}.png,unripe,green\n" for i in range(4))
    images = files["ripe"] + files["unripe"]
    info = ws.import_csv(ALICE, "labels.csv", csv.encode(), images, val_split=0.25, test_split=0.25)
    dataset = ws.load_dataset(ALICE, info.id)
    assert info.n_images == 8 and dataset.tasks == {"colour": ["green", "red"]}


def test_drafts_and_config():
    assert ws.load_draft(BOB) == {}
    ws.update_draft(BOB, dataset_id="0" * 24, model={"backbone": "mobilenet_025", "weights": "none"})
    ws.update_draft(BOB, model={"image_size": 32}, train={"epochs": 2})
    config = ws.config_from_draft(ws.load_draft(BOB))
    assert (config.data, config.weights, config.image_size, config.epochs) == ("dataset:" + "0" * 24, "none", 32, 2)
    assert ws.draft_from_config(config)["model"]["image_size"] == 32


def test_offline_public_sample_is_a_plain_sentence():
    start = time.time()
    with pytest.raises(TLError, match="offline"):
        ws.download_public_sample(ALICE, url="http://127.0.0.1:9/nothing.zip", timeout=2)
    assert time.time() - start < 10


def test_retention_cleanup():
    old = ws.import_sample(ALICE, per_class=3)
    kept = ws.import_sample(ALICE, per_class=3)
    ws.set_dataset_shared(ALICE, kept.id, True)
    counts = housekeeping.cleanup(days=1, now=time.time() + 3 * 86400)
    assert counts["datasets"] >= 1
    ids = [d.id for d in ws.list_datasets(ALICE)]
    assert old.id not in ids and kept.id in ids
    assert housekeeping.cleanup(days=0) == {"datasets": 0, "runs": 0, "drafts": 0, "uploads": 0}


def test_progress_summary():
    events = [{"t": 0, "type": "queued", "position": 1}, {"t": 1, "type": "state", "state": "running"},
              {"t": 2, "type": "phase", "phase": "head", "epochs": 2},
              {"t": 3, "type": "batch", "phase": "head", "epoch": 1, "batch": 1, "steps": 2, "loss": 1.0, "eta": 30},
              {"t": 4, "type": "epoch", "phase": "head", "epoch": 1, "total_epochs": 3, "loss": 0.9, "accuracy": 0.5,
               "val_loss": 1.0, "val_accuracy": 0.4, "eta": 20},
              {"t": 5, "type": "phase", "phase": "fine-tune", "epochs": 2},
              {"t": 6, "type": "batch", "phase": "fine-tune", "epoch": 2, "batch": 1, "steps": 2, "loss": 0.5,
               "eta": 90}]
    p = summarize(events, expected_epochs=3)
    assert p.state == "running" and p.fine_tune_start == 1.5 and p.fraction == pytest.approx(0.5)
    assert "epoch 2 of 3" in status_line(p) and "min" in eta_text(90)
    p = summarize(events + [{"t": 7, "type": "failed", "message": "Out of memory."}])
    assert p.finished and p.message == "Out of memory."


def test_streamlit_config_matches_the_engine_settings():
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 500 == int(os.environ.get("TLS_MAX_UPLOAD_MB", "500"))
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none" and config["client"]["toolbarMode"] == "minimal"
    # The system's light / dark preference applies: no fixed base, a light and a dark palette.
    assert "base" not in config["theme"]
    assert config["theme"]["light"]["backgroundColor"] == "#FFFFFF"
    assert config["theme"]["dark"]["backgroundColor"] == "#0F172A"


def test_sample_is_reused_not_duplicated():
    owner = "u:" + "c" * 24
    first, _ = ws.try_sample(owner)
    second, note = ws.try_sample(owner)
    assert first.id == second.id and note
    draft = ws.load_draft(owner)
    assert ws.config_from_draft(draft).data == first.ref


def test_resplit_is_the_owners_waits_for_runs_and_leaves_trained_runs_their_split(tmp_path):
    from tlcore.runner import resolve_dataset
    from tlcore.runs import RunConfig, RunState, RunStore

    info = ws.import_zip(ALICE, class_zip({"cat": (200, 0, 0), "dog": (0, 0, 200)}, per_class=20), "pets.zip")
    store = RunStore(settings.workspace_dir())
    run_id = store.create(RunConfig(data="dataset:" + info.id), ALICE)          # a queued run needs the dataset
    trained_split = {s.name: s.split for s in resolve_dataset(store.config(run_id), store.run_dir(run_id),
                                                              store.workspace).samples}
    with pytest.raises(DataError, match="waiting or training uses this dataset"):
        ws.resplit_dataset(ALICE, info.id, 0.3, 0.3)
    store.set_state(run_id, RunState.DONE)
    ws.set_dataset_shared(ALICE, info.id, True)
    with pytest.raises(DataError, match="Only the person"):
        ws.resplit_dataset(BOB, info.id, 0.3, 0.3)
    ws.resplit_dataset(ALICE, info.id, 0.3, 0.25)
    assert ws.load_dataset(ALICE, info.id).counts("test") == {"cat": 5, "dog": 5}
    again = resolve_dataset(store.config(run_id), store.run_dir(run_id), store.workspace)
    assert {s.name: s.split for s in again.samples} == trained_split        # the run keeps what it trained on


@pytest.mark.parametrize("key, ok", [("0123abcd", True), ("deadbeef" * 4, True), ("../../etc", False),
                                     ("ABCDEF12", False), ("abc", False), ("", False)])
def test_session_dir_takes_only_random_hex_ids(key, ok):
    if ok:
        folder = housekeeping.session_dir(key)
        assert folder.is_dir() and folder.parent.name == "sessions"
        assert housekeeping.end_session(folder) and not folder.exists()
    else:
        with pytest.raises(TLError, match="session's id is not valid"):
            housekeeping.session_dir(key)


def test_end_session_removes_only_session_folders(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    assert not housekeeping.end_session(outside) and outside.is_dir()
    assert not housekeeping.end_session(settings.workspace_dir() / "datasets")


def test_sweep_removes_what_a_stopped_server_left_and_keeps_the_rest(tmp_path):
    root = tmp_path                                              # a workspace of its own: exact counts
    kept = ws.import_zip(ALICE, class_zip({"cat": (200, 0, 0), "dog": (0, 0, 200)}), "pets.zip", workspace=root)
    old_session, new_session = housekeeping.session_dir("aaaa1111", workspace=root), housekeeping.session_dir("bbbb2222", workspace=root)
    (old_session / "half.zip").write_bytes(b"x" * 100)
    half_import = root / "datasets" / ("f" * 24)
    (half_import / "files").mkdir(parents=True)
    stage = root / "runs" / "20260101-000000-abcdefabcdef" / "exports" / ".export-x1"
    stage.mkdir(parents=True)
    start = time.time()
    for path in (old_session, half_import, stage, root / "datasets" / kept.id):
        os.utime(path, (start - 60, start - 60))                  # from before this server started
    os.utime(new_session, (start + 1, start + 1))
    counts = housekeeping.sweep_leftovers(start, workspace=root)
    assert counts == {"sessions": 1, "datasets": 1, "exports": 1}
    assert not old_session.exists() and not half_import.exists() and not stage.exists()
    assert new_session.is_dir()
    assert ws.load_dataset(ALICE, kept.id, workspace=root).classes == ["cat", "dog"]
