"""Renaming and deleting datasets (issue 9): plain-sentence refusals, and runs that keep working afterwards."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import workspace as ws  # noqa: E402
from tlcore.errors import DataError  # noqa: E402
from tlcore.runner import resolve_dataset  # noqa: E402
from tlcore.runs import RunConfig, RunState, RunStore  # noqa: E402

ALICE, BOB = "u:" + "a" * 24, "u:" + "b" * 24


def _dataset(root: Path, name: str = "pets"):
    classes = {label: [(f"{label}{i}.png", corpus.unique_png(16)) for i in range(4)] for label in ("cat", "dog")}
    return ws.import_files(ALICE, classes, name=name, workspace=root)


def _finished_run(root: Path, info, state: RunState = RunState.DONE) -> str:
    store = RunStore(root)
    run_id = store.create(RunConfig(data=info.ref, epochs=1), owner=ALICE, state=state)
    resolve_dataset(store.config(run_id), store.run_dir(run_id), root)       # what training does first
    return run_id


def test_rename_checks_the_name_and_the_owner(tmp_path):
    info = _dataset(tmp_path)
    renamed = ws.rename_dataset(ALICE, info.id, "  My   cats and dogs ", workspace=tmp_path)
    assert renamed.name == "My cats and dogs" and renamed.id == info.id
    assert [d.name for d in ws.list_datasets(ALICE, workspace=tmp_path)] == ["My cats and dogs"]
    for empty in ("", "   ", None):
        with pytest.raises(DataError, match="^A dataset needs a name: type one, then rename it.$"):
            ws.rename_dataset(ALICE, info.id, empty, workspace=tmp_path)
    with pytest.raises(DataError, match="at most 120"):
        ws.rename_dataset(ALICE, info.id, "x" * 121, workspace=tmp_path)
    ws.set_dataset_shared(ALICE, info.id, True, workspace=tmp_path)
    with pytest.raises(DataError, match="Only the person who imported this dataset"):
        ws.rename_dataset(BOB, info.id, "mine now", workspace=tmp_path)
    assert ws.get_dataset(ALICE, info.id, workspace=tmp_path).name == "My cats and dogs"


def test_runs_keep_their_images_after_a_rename_or_a_delete(tmp_path):
    info = _dataset(tmp_path)
    run_id = _finished_run(tmp_path, info)
    store = RunStore(tmp_path)
    ws.rename_dataset(ALICE, info.id, "renamed", workspace=tmp_path)
    assert ws.runs_using_dataset(info.id, workspace=tmp_path) == [run_id]
    assert ws.delete_dataset(ALICE, info.id, workspace=tmp_path) == 1
    assert ws.list_datasets(ALICE, workspace=tmp_path) == []              # gone from every list
    with pytest.raises(DataError, match="not available"):
        ws.get_dataset(ALICE, info.id, workspace=tmp_path)
    data = resolve_dataset(store.config(run_id), store.run_dir(run_id), tmp_path)
    assert len(data.samples) == 8 and all(Path(s.path).is_file() for s in data.samples)   # the run still reads them
    # Once no run needs them, the next delete removes those images too.
    store.delete(run_id)
    other = _dataset(tmp_path, "other")
    assert ws.delete_dataset(ALICE, other.id, workspace=tmp_path) == 0
    assert not (ws.datasets_dir(tmp_path) / info.id).exists() and not (ws.datasets_dir(tmp_path) / other.id).exists()


def test_delete_is_refused_while_a_run_waits_for_the_dataset(tmp_path):
    info = _dataset(tmp_path)
    RunStore(tmp_path).create(RunConfig(data=info.ref), owner=ALICE, state=RunState.QUEUED)
    with pytest.raises(DataError, match="waiting or training; stop that run first"):
        ws.delete_dataset(ALICE, info.id, workspace=tmp_path)
    assert [d.id for d in ws.list_datasets(ALICE, workspace=tmp_path)] == [info.id]
