"""The bad-input corpus (tests/unit/corpus.py) against every import path.

For each kind: the outcome is as documented in docs/reliability.md, only TLError subclasses escape, the
good files are kept, every kept file is one TensorFlow decodes as PIL does, names written under ``dest``
are generated, and nothing outside ``dest`` changes.
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import data, settings  # noqa: E402
from tlcore.errors import DataError, TLError  # noqa: E402

GENERATED = re.compile(r"^\d{6}(\.[a-z0-9]{1,5})?$")


def _run(tmp_path: Path, source: object, **kw):
    """Import ``source``; returns (dataset or None, TLError or None). Checks nothing outside dest changed."""
    dest = tmp_path / "ws" / "import"
    before = corpus.snapshot(tmp_path, dest)
    result, error = None, None
    try:
        if isinstance(source, dict):
            result = data.from_files(source, dest, **kw)
        else:
            result = data.load_data(source, dest, **kw)
    except TLError as err:          # anything else fails the test
        error = err
    assert corpus.snapshot(tmp_path, dest) == before, "files outside dest changed"
    assert not corpus.ABS_TARGET.exists()
    if dest.exists():
        for path in dest.rglob("*"):
            assert path.is_dir() or path.name == "dataset.json" or GENERATED.match(path.name), path
    return result, error


def _check_kept(ds: data.Dataset, source: object) -> None:
    for sample in ds.samples:
        if not isinstance(source, Path) or not Path(sample.path).is_relative_to(source.parent):
            assert Path(sample.path).is_relative_to(ds.root), sample.path
        corpus.assert_tf_safe(sample.path)


@pytest.mark.parametrize("case", corpus.SOURCE_CASES, ids=lambda c: c.kind)
def test_bad_source(case, tmp_path, monkeypatch):
    for key, value in case.patch.items():
        monkeypatch.setattr(settings, key, value)
    source = case.build(tmp_path / "in")
    start = time.process_time()          # CPU time of this process (all threads): robust on a busy machine
    ds, error = _run(tmp_path, source)
    assert time.process_time() - start < 20
    if case.error:
        assert isinstance(error, DataError), f"expected a DataError, got {error!r}"
        for text in case.error:
            assert text in str(error)
        return
    assert error is None, str(error)
    assert len(ds.samples) == case.kept
    for name, reason in case.skipped:
        assert any(name in n and reason in r for n, r in ds.report.skipped), ds.report.skipped
    assert len(ds.report.skipped) == len(case.skipped), ds.report.skipped
    if case.warning:
        assert any(case.warning in w for w in ds.report.warnings), ds.report.warnings
    if case.classes:
        assert ds.classes == case.classes
        again = data.Dataset.load(ds.root)
        assert again.classes == case.classes and {s.label for s in again.samples} == set(case.classes)
    _check_kept(ds, source)


def test_deep_folder_images_belong_to_the_top_class(tmp_path):
    ds, _ = _run(tmp_path, corpus.deep_folder(tmp_path / "in" / "d"))
    deep = [s for s in ds.samples if "deep.png" in s.name]
    assert len(deep) == 1 and deep[0].label == "cat" and deep[0].name.count("/") == 31


def _place(case: corpus.ImageCase, via: str, root: Path) -> object:
    """The good classes plus the case's file in class 'cat', as a folder, a zip or uploads."""
    payload = case.make()
    if via == "upload":
        uploads = {label: [(name.split("/")[-1], blob)] for name, blob in corpus.good_entries()
                   for label in [name.split("/")[0]]}
        uploads = {"cat": [], "dog": []}
        for name, blob in corpus.good_entries():
            uploads[name.split("/")[0]].append((name.split("/")[1], blob))
        uploads["cat"].append((case.filename, payload))
        return uploads
    if via == "zip":
        return corpus.make_zip(root / "data.zip", corpus.good_entries() + [(f"cat/{case.filename}", payload)])
    folder = corpus.write_classes(root / "d", {"cat": 3, "dog": 3})
    (folder / "cat" / case.filename).write_bytes(payload)
    return folder


@pytest.mark.parametrize("via", ["folder", "zip", "upload"])
@pytest.mark.parametrize("case", corpus.IMAGE_CASES, ids=lambda c: c.kind)
def test_bad_image_in_a_dataset(case, via, tmp_path, monkeypatch):
    for key, value in case.patch.items():
        monkeypatch.setattr(settings, key, value)
    source = _place(case, via, tmp_path / "in")
    ds, error = _run(tmp_path, source, val_split=0.2, test_split=0.2)
    assert error is None, str(error)
    mine = [s for s in ds.samples if s.name.endswith(case.filename)]
    if case.reason:
        assert len(ds.samples) == 6 and not mine
        [(name, reason)] = ds.report.skipped
        assert name.endswith(case.filename) and case.reason.lower() in reason.lower()
    else:
        assert len(ds.samples) == 7 and len(mine) == 1 and not ds.report.skipped
    _check_kept(ds, source)
    if case.kind == "exif-rotated":
        with Image.open(mine[0].path) as img:
            assert img.size == (20, 40) and img.convert("RGB").getpixel((10, 5))[0] > 200
    if case.kind == "photo-6000x4000":
        with Image.open(mine[0].path) as img:
            assert img.size == (1024, 683)
