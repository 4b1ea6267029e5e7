"""Fixes make a new dataset version; nothing is edited in place; versions say what changed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import workspace as ws  # noqa: E402
from tlcore.data import Dataset  # noqa: E402
from tlcore.errors import DataError  # noqa: E402
from tlcore.runs import RunConfig, RunStore  # noqa: E402

ALICE, BOB = "u:" + "a" * 24, "u:" + "c" * 24


def _pets(root: Path, **kw):
    classes = {label: [(f"{label}{i}.png", corpus.unique_png(16)) for i in range(n)]
               for label, n in (("cat", 8), ("Cat", 3), ("dog", 8))}
    return ws.import_files(ALICE, classes, name="pets", workspace=root, **kw)


def _snapshot(root: Path, dataset_id: str) -> tuple[str, dict]:
    folder = root / "datasets" / dataset_id
    return (folder / "dataset.json").read_text(), {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fixes_make_v2_and_leave_v1_as_it_was(tmp_path):
    v1 = _pets(tmp_path)
    before = _snapshot(tmp_path, v1.id)
    ds = ws.load_dataset(ALICE, v1.id, workspace=tmp_path)
    names = [s.name for s in ds.samples]
    fixes = {"remove": [names[0], names[1]], "relabel": {"dog/dog0.png": "cat"}, "merge": {"Cat": "cat"}}
    v2 = ws.new_version(ALICE, v1.id, fixes, workspace=tmp_path)
    assert _snapshot(tmp_path, v1.id) == before                                   # nothing edited in place
    assert v2.number == 2 and v2.id != v1.id and v2.name == "pets v2"
    assert v2.label == "v2: 2 images removed, 1 relabelled, 'Cat' merged into 'cat'"
    new = ws.load_dataset(ALICE, v2.id, workspace=tmp_path)
    assert new.classes == ["cat", "dog"] and len(new.samples) == len(ds.samples) - 2
    assert next(s.label for s in new.samples if s.name == "dog/dog0.png") == "cat"
    assert all(Path(s.path).is_relative_to(new.root) and Path(s.path).is_file() for s in new.samples)
    v3 = ws.new_version(ALICE, v2.id, {"remove": ["dog/dog1.png"]}, workspace=tmp_path)
    versions = ws.dataset_versions(ALICE, v1.id, workspace=tmp_path)
    assert [v.label for v in versions] == ["v1: as imported", v2.label, "v3: 1 image removed"]
    assert [v.id for v in ws.dataset_versions(ALICE, v3.id, workspace=tmp_path)] == [v1.id, v2.id, v3.id]
    assert ws.version_number(v3.ref, workspace=tmp_path) == 3 and ws.version_number(v1.id, workspace=tmp_path) == 1
    assert v3.name == "pets v3"


def test_a_run_records_the_version_it_trained_on_and_the_version_outlives_its_parent(tmp_path):
    v1 = _pets(tmp_path)
    v2 = ws.new_version(ALICE, v1.id, {"leave_out": ["Cat"]}, workspace=tmp_path)
    store = RunStore(tmp_path)
    run_id = store.create(RunConfig(data=ws.get_dataset(ALICE, v2.id, workspace=tmp_path).ref, epochs=1),
                          owner=ALICE)
    assert ws.version_number(store.config(run_id).data, workspace=tmp_path) == 2
    assert ws.runs_using_dataset(v2.id, workspace=tmp_path) == [run_id]
    ws.delete_dataset(ALICE, v1.id, workspace=tmp_path)                             # no run uses v1: removed
    new = ws.load_dataset(ALICE, v2.id, workspace=tmp_path)
    assert new.classes == ["cat", "dog"] and all(Path(s.path).is_file() for s in new.samples)   # hard links survive
    assert [v.number for v in ws.dataset_versions(ALICE, v2.id, workspace=tmp_path)] == [2]


def test_split_again_after_removing_leaks(tmp_path):
    v1 = _pets(tmp_path, val_split=0.25, test_split=0.25)
    ds = ws.load_dataset(ALICE, v1.id, workspace=tmp_path)
    test_image = next(s.name for s in ds.samples if s.split == "test")
    v2 = ws.new_version(ALICE, v1.id, {"remove": [test_image], "resplit": (0.25, 0.25)}, workspace=tmp_path)
    assert v2.changes == "1 image removed, split again (25% validation, 25% test)"
    new = ws.load_dataset(ALICE, v2.id, workspace=tmp_path)
    assert {s.split for s in new.samples} == {"train", "val", "test"}
    assert json.loads((new.root / "dataset.json").read_text())["report"]["small_classes"] == {}


@pytest.mark.parametrize("fixes, message", [
    ({}, "Nothing to change"),
    ({"remove": ["nowhere.png"]}, "'nowhere.png' is not in this dataset"),
    ({"relabel": {"dog/dog0.png": "bird"}}, "There is no class 'bird'"),
    ({"merge": {"Cat": "cat", "cat": "dog"}}, "cannot be merged into a class that is itself merged away"),
    ({"leave_out": ["cat", "Cat"]}, "would leave 1 class"),
    ({"resplit": (0.6, 0.6)}, "shares"),
], ids=["nothing", "unknown-image", "unknown-class", "merge-chain", "one-class-left", "bad-shares"])
def test_bad_fixes_are_refused_in_a_sentence_and_make_nothing(tmp_path, fixes, message):
    v1 = _pets(tmp_path)
    with pytest.raises(Exception) as caught:
        ws.new_version(ALICE, v1.id, fixes, workspace=tmp_path)
    assert message in str(caught.value)
    assert [d.id for d in ws.list_datasets(ALICE, workspace=tmp_path)] == [v1.id]
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [v1.id]


def test_someone_else_sees_no_versions_of_a_private_dataset(tmp_path):
    v1 = _pets(tmp_path)
    with pytest.raises(DataError, match="not available"):
        ws.new_version(BOB, v1.id, {"remove": ["cat/cat0.png"]}, workspace=tmp_path)
    ws.set_dataset_shared(ALICE, v1.id, True, workspace=tmp_path)
    mine = ws.new_version(BOB, v1.id, {"remove": ["cat/cat0.png"]}, workspace=tmp_path)
    assert ws.get_dataset(BOB, mine.id, workspace=tmp_path).owner == BOB
    assert [v.number for v in ws.dataset_versions(ALICE, v1.id, workspace=tmp_path)] == [1]      # Bob's is his


def test_own_split_datasets_are_not_split_again(tmp_path):
    src = corpus.write_classes(tmp_path / "src" / "train", {"cat": 3, "dog": 3})
    corpus.write_classes(src.parent / "test", {"cat": 1, "dog": 1})
    from tlcore.data import load_data
    from tlcore.data.versions import Fixes, derive

    ds = load_data(src.parent, tmp_path / "imported")
    with pytest.raises(DataError, match="own train/valid/test folders"):
        derive(ds, tmp_path / "v2", Fixes(resplit=(0.2, 0.2)))
    new, changes = derive(ds, tmp_path / "v2", Fixes(remove=["test/cat/img_0.png"]))
    assert changes == "1 image removed" and isinstance(new, Dataset) and new.own_splits
    assert Dataset.load(tmp_path / "imported").samples == ds.samples
