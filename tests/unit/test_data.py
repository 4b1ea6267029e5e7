"""tlcore.data: every data-source shape, splitting, warnings, save/load, the sample dataset and birds5."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import data  # noqa: E402
from tlcore.errors import ConfigError, DataError  # noqa: E402
from tlcore.sample import SAMPLE_CLASSES, SAMPLE_NAME, make_sample  # noqa: E402

SPEC = {"cat": 5, "dog": 5}


def _zip(entries_prefix: str, splits: bool = False):
    def build(root: Path) -> Path:
        if splits:
            entries = []
            for split, n in (("train", 5), ("valid", 2), ("test", 2)):
                entries += corpus.good_entries(f"{entries_prefix}{split}/", {"cat": n, "dog": n})
        else:
            entries = corpus.good_entries(entries_prefix, SPEC)
        return corpus.make_zip(root / "data.zip", entries)
    return build


def _folder(splits: bool = False):
    def build(root: Path) -> Path:
        if not splits:
            return corpus.write_classes(root / "data", SPEC)
        for split, n in (("train", 5), ("val", 2), ("test", 2)):
            corpus.write_classes(root / "data" / split, {"cat": n, "dog": n})
        return root / "data"
    return build


def _csv(delimiter: str = ",", encoding: str = "utf-8", bom: bool = False):
    def build(root: Path) -> Path:
        corpus.write_classes(root / "img", {"cat": 5, "dog": 5})
        rows = [f"path{delimiter}label"] + [f"img/{c}/img_{i}.png{delimiter}{c}" for c in SPEC for i in range(5)]
        text = ("\ufeff" if bom else "") + "\n".join(rows) + "\n"
        (root / "labels.csv").write_bytes(text.encode(encoding))
        return root / "labels.csv"
    return build


SHAPES = [
    ("zip-flat", _zip(""), None),
    ("zip-top-folder", _zip("My Photos/"), None),
    ("zip-two-wrappers", _zip("export/data/"), None),
    ("zip-train-valid-test", _zip("", splits=True), (10, 4, 4)),
    ("zip-top-folder-splits", _zip("birds/", splits=True), (10, 4, 4)),
    ("folder", _folder(), None),
    ("folder-splits", _folder(splits=True), (10, 4, 4)),
    ("csv-comma", _csv(), None),
    ("csv-semicolon", _csv(";"), None),
    ("csv-bom", _csv(bom=True), None),
    ("csv-bom-semicolon-cp1252", _csv(";", "cp1252"), None),
]


@pytest.mark.parametrize("kind, build, own", SHAPES, ids=[s[0] for s in SHAPES])
def test_source_shapes(kind, build, own, tmp_path):
    ds = data.load_data(build(tmp_path / "in"), tmp_path / "ws", seed=1)
    assert ds.classes == ["cat", "dog"]
    sizes = tuple(len(ds.split(s)) for s in data.SPLITS)
    assert sizes == (own or (6, 2, 2))
    assert ds.counts("test") == {"cat": sizes[2] // 2, "dog": sizes[2] // 2}
    assert not ds.report.skipped and not ds.report.warnings
    for s in ds.samples:
        assert Path(s.path).is_file() and s.label in ds.classes
    if kind.startswith("zip"):
        assert all(Path(s.path).is_relative_to(tmp_path / "ws") for s in ds.samples)


def test_per_class_uploads(tmp_path):
    files = {"Red apple": [(f"a{i}.png", corpus.unique_png()) for i in range(4)],
             "grüne Birne": [(f"b{i}.jpg", corpus.unique_png()) for i in range(4)]}
    files["Red apple"].append(("../../evil.png", corpus.unique_png()))
    ds = data.from_files(files, tmp_path / "ws", val_split=0.25, test_split=0.25)
    assert ds.classes == ["Red apple", "grüne Birne"] and len(ds.samples) == 9
    assert not (tmp_path / "evil.png").exists()
    names = {p.name for p in (tmp_path / "ws" / "files").iterdir()}
    assert all(n[:6].isdigit() for n in names)


def test_csv_extra_label_columns_and_split_column(tmp_path):
    corpus.write_classes(tmp_path / "img", {"cat": 4, "dog": 4})
    rows = ["path,label,colour,split"]
    for c in ("cat", "dog"):
        for i in range(4):
            rows.append(f"img/{c}/img_{i}.png,{c},{'' if i == 0 else ('red' if i % 2 else 'blue')},"
                        f"{'test' if i == 3 else 'train'}")
    (tmp_path / "l.csv").write_text("\n".join(rows))
    ds = data.from_csv(tmp_path / "l.csv", tmp_path / "ws", val_split=0.0)
    assert ds.tasks == {"colour": ["blue", "red"]}
    assert {s.labels["colour"] for s in ds.samples} == {None, "red", "blue"}
    assert ds.counts("test") == {"cat": 1, "dog": 1} and len(ds.split("val")) == 0
    only = data.from_csv(tmp_path / "l.csv", tmp_path / "ws2", label_columns=["label"], val_split=0.0)
    assert only.tasks == {}


def test_csv_image_root_and_escape(tmp_path):
    corpus.write_classes(tmp_path / "pics", SPEC)
    (tmp_path / "secret.png").write_bytes(corpus.unique_png())
    rows = ["path,label"] + [f"{c}/img_{i}.png,{c}" for c in SPEC for i in range(5)]
    rows += ["../secret.png,cat", f"{tmp_path / 'secret.png'},dog", "nothere.png,cat", "http://x/y.png,cat"]
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "l.csv").write_text("\n".join(rows))
    ds = data.load_data(tmp_path / "meta" / "l.csv", tmp_path / "ws", image_root=tmp_path / "pics")
    reasons = dict(ds.report.skipped)
    assert len(ds.samples) == 10
    assert "outside" in reasons["../secret.png"] and "outside" in reasons[str(tmp_path / "secret.png")]
    assert reasons["nothere.png"] == "file not found" and "web address" in reasons["http://x/y.png"]


def test_split_is_stratified_seeded_and_deterministic(tmp_path):
    src = corpus.write_classes(tmp_path / "d", {"a": 20, "b": 40})
    one = data.load_data(src, tmp_path / "w1", seed=3)
    two = data.load_data(src, tmp_path / "w2", seed=3)
    other = data.load_data(src, tmp_path / "w3", seed=4)
    key = lambda ds: [(s.name, s.split) for s in ds.samples]  # noqa: E731
    assert key(one) == key(two) and key(one) != key(other)
    assert one.counts("val") == {"a": 3, "b": 6} and one.counts("test") == {"a": 3, "b": 6}
    no_holdout = data.load_data(src, tmp_path / "w4", val_split=0, test_split=0)
    assert len(no_holdout.split("train")) == 60


def test_own_splits_missing_test_is_carved_from_train(tmp_path):
    for split, n in (("train", 10), ("valid", 2)):
        corpus.write_classes(tmp_path / "d" / split, {"x": n, "y": n})
    ds = data.load_data(tmp_path / "d", tmp_path / "ws", test_split=0.2)
    assert ds.counts("val") == {"x": 2, "y": 2} and ds.counts("test") == {"x": 2, "y": 2}
    assert ds.counts("train") == {"x": 8, "y": 8}


@pytest.mark.parametrize("val, test, expected", [
    (0.3, 0.2, {"val": {"a": 6, "b": 12}, "test": {"a": 4, "b": 8}}),
    (0.0, 0.25, {"val": {"a": 0, "b": 0}, "test": {"a": 5, "b": 10}}),
    (0.5, 0.5, "must be between 0 and 1 and add up to less than 1"),
])
def test_resplit_changes_the_shares_per_class_and_is_saved(tmp_path, val, test, expected):
    src = corpus.write_classes(tmp_path / "d", {"a": 20, "b": 40})
    ds = data.load_data(src, tmp_path / "w", seed=3)
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            data.resplit(ds, val, test)
        assert data.Dataset.load(tmp_path / "w").counts("val") == {"a": 3, "b": 6}     # unchanged
        return
    data.resplit(ds, val, test, seed=3)
    again = data.Dataset.load(tmp_path / "w")
    assert {k: again.counts(k) for k in ("val", "test")} == expected
    assert len(again.samples) == 60 and not again.own_splits


def test_resplit_keeps_a_datasets_own_split_folders(tmp_path):
    for split, n in (("train", 10), ("valid", 2), ("test", 2)):
        corpus.write_classes(tmp_path / "d" / split, {"x": n, "y": n})
    ds = data.load_data(tmp_path / "d", tmp_path / "ws")
    assert ds.own_splits
    with pytest.raises(DataError, match="own train/valid/test folders"):
        data.resplit(ds, 0.3, 0.3)
    assert data.Dataset.load(tmp_path / "ws").counts("test") == {"x": 2, "y": 2}


def test_save_load_roundtrip_and_label_index(tmp_path):
    ds = data.load_data(_zip("top/")(tmp_path), tmp_path / "ws")
    (tmp_path / "ws").rename(tmp_path / "moved")
    again = data.Dataset.load(tmp_path / "moved")
    assert again.classes == ds.classes and len(again.samples) == len(ds.samples)
    assert all(Path(s.path).is_file() for s in again.samples)
    assert [again.label_index(s) for s in again.samples] == [ds.label_index(s) for s in ds.samples]
    assert again.split("valid") == again.split("val")
    with pytest.raises(DataError, match="dataset.json"):
        data.Dataset.load(tmp_path / "nothing")


def test_unlabelled_takes_every_image(tmp_path):
    src = corpus.write_classes(tmp_path / "d", {"a": 2, "b": 1})
    (src / "loose.png").write_bytes(corpus.unique_png())
    (src / "a" / "deeper").mkdir()
    (src / "a" / "deeper" / "x.png").write_bytes(corpus.unique_png())
    ds = data.load_data(src, tmp_path / "ws", unlabelled=True)
    assert len(ds.samples) == 5 and {s.label for s in ds.samples} == {None} and ds.classes == []


def test_imbalance_warning(tmp_path):
    ds = data.load_data(corpus.write_classes(tmp_path / "d", {"few": 3, "many": 10}), tmp_path / "ws")
    assert any("imbalanced" in w and "'few'" in w for w in ds.report.warnings)



def test_duplicate_warnings_name_the_files(tmp_path):
    """Issue 9: a warning about copies names them (a few, then a count), so the user can find and remove them."""
    src = corpus.write_classes(tmp_path / "d", {"cat": 3, "dog": 3})
    for i in range(5):                                   # five pairs of copies inside 'cat'
        same = corpus.unique_png()
        (src / "cat" / f"a{i}.png").write_bytes(same)
        (src / "cat" / f"a{i} copy.png").write_bytes(same)
    for i in range(7):                                   # seven images that are in both classes
        same = corpus.unique_png()
        (src / "cat" / f"both{i}.png").write_bytes(same)
        (src / "dog" / f"both{i}.png").write_bytes(same)
    warnings = data.load_data(src, tmp_path / "ws").report.warnings
    within = next(w for w in warnings if "more than once in the same class" in w)
    assert within.startswith("5 images appear more than once in the same class: ('cat/a0 copy.png', 'cat/a0.png')")
    assert "and 2 more." in within and "'cat/a2.png'" in within and "'cat/a3.png'" not in within
    cross = [w for w in warnings if "in two classes" in w]
    assert len(cross) == 6 and "'cat/both0.png' (class 'cat') and 'dog/both0.png' (class 'dog')" in cross[0]
    assert cross[-1].startswith("2 more images are in two classes (('cat/both5.png', 'dog/both5.png') and "
                                "('cat/both6.png', 'dog/both6.png'))")


def test_duplicate_target_images_are_named_too(tmp_path):
    """Unlabelled imports (domain adaptation's target images) warn about copies the same way."""
    src = corpus.write_classes(tmp_path / "d", {"a": 2})
    same = corpus.unique_png()
    (src / "a" / "x.png").write_bytes(same)
    (src / "loose.png").write_bytes(same)
    ds = data.load_data(src, tmp_path / "ws", unlabelled=True)
    assert ds.report.warnings == ["1 image appears more than once among these images: ('a/x.png', 'loose.png'). "
                                  "Each copy counts again, so remove the duplicates."]


FAILURES = [
    ("one-class", lambda r: corpus.write_classes(r / "d", {"cat": 5}), ["2 classes", "1 class", "'cat'"]),
    ("empty-folder", lambda r: (r / "d").mkdir(parents=True) or r / "d", ["2 classes", "0 classes"]),
    ("zip-not-zip", lambda r: (r.mkdir(parents=True), (r / "x.zip").write_bytes(b"nope" * 50))[0] or r / "x.zip",
     ["x.zip", "not a valid zip file"]),
    ("csv-no-label-column", lambda r: corpus.csv_source(r, "path,kind\nimg/cat/img_0.png,cat\n"),
     ["'label' column", "path, kind"]),
    ("missing-source", lambda r: r / "nowhere", ["does not exist"]),
    ("wrong-file-type", lambda r: (r.mkdir(parents=True), (r / "a.docx").write_bytes(b"x"))[0] or r / "a.docx",
     [".zip or a .csv"]),
]


@pytest.mark.parametrize("kind, build, needs", FAILURES, ids=[f[0] for f in FAILURES])
def test_source_failures(kind, build, needs, tmp_path):
    with pytest.raises(DataError) as caught:
        data.load_data(build(tmp_path / "in"), tmp_path / "ws")
    for text in needs:
        assert text in str(caught.value)


def test_bad_shares_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="shares"):
        data.load_data(corpus.write_classes(tmp_path / "d", SPEC), tmp_path / "ws", val_split=0.6, test_split=0.5)


def test_make_sample_is_importable(tmp_path):
    src = make_sample(tmp_path / "sample", per_class=6, size=32)
    ds = data.load_data(src, tmp_path / "ws")
    assert ds.classes == sorted(SAMPLE_CLASSES) and ds.counts() == {c: 6 for c in SAMPLE_CLASSES}
    assert "Synthetic" in SAMPLE_NAME and not ds.report.warnings


def test_birds5_keeps_its_own_splits(tmp_path):
    if not corpus.BIRDS5.is_dir():
        pytest.skip(f"real data not found at {corpus.BIRDS5}")
    start = time.process_time()
    ds = data.from_folder(corpus.BIRDS5, tmp_path / "ws")
    assert time.process_time() - start < 30
    assert ds.classes == ["ASIAN GREEN BEE EATER", "D-ARNAUDS BARBET", "HOUSE FINCH", "OVENBIRD", "RUFOUS TREPE"]
    assert (len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))) == (1197, 25, 25)
    assert set(ds.counts("test").values()) == {5} and not ds.report.skipped


def _own_splits(root: Path, spec: dict[str, dict[str, int]]) -> Path:
    for split, classes in spec.items():
        corpus.write_classes(root / "d" / split, classes)
    return root / "d"


SMALL_CLASSES = [
    # (id, build, keyword arguments, classes kept, {class: splits of its images}, warning text, report says)
    ("one-image-trains", lambda r: corpus.write_classes(r / "d", {"cat": 5, "dog": 1}), {}, ["cat", "dog"],
     {"dog": {"train"}}, "Class 'dog' has 1 image, fewer than the 3 needed (one each for training, validation "
     "and test), so all of them are used for training", {"dog": "train only"}),
    ("two-images-train", lambda r: corpus.write_classes(r / "d", {"cat": 5, "dog": 2}), {}, ["cat", "dog"],
     {"dog": {"train"}}, "Class 'dog' has 2 images, fewer than the 3 needed", {"dog": "train only"}),
    ("one-image-left-out", lambda r: corpus.write_classes(r / "d", {"cat": 5, "dog": 4, "owl": 1}),
     {"small_classes": "leave_out"}, ["cat", "dog"], {}, "Class 'owl' has 1 image, fewer than the 3 needed "
     "(one each for training, validation and test), so it was left out; add more images of 'owl'", {"owl": "left out"}),
    ("no-shares-no-rule", lambda r: corpus.write_classes(r / "d", {"cat": 5, "dog": 1}),
     {"val_split": 0, "test_split": 0}, ["cat", "dog"], {"dog": {"train"}}, "", {}),
    ("own-splits-one-training-image", lambda r: _own_splits(r, {"train": {"cat": 3, "dog": 1}, "valid": {"cat": 1},
                                                                "test": {"cat": 1, "dog": 1}}), {}, ["cat", "dog"],
     {"dog": {"train", "test"}}, "The validation folder has no images of 'dog'", {}),
    ("own-splits-no-training-image", lambda r: _own_splits(r, {"train": {"cat": 3, "dog": 3}, "test": {"cat": 1,
                                                                                                       "owl": 2}}),
     {}, ["cat", "dog"], {}, "Class 'owl' has 0 images for training, fewer than the 2 needed (one each for "
     "training and validation), so it was left out", {"owl": "left out"}),
]


@pytest.mark.parametrize("kind, build, kw, classes, splits, warning, said", SMALL_CLASSES,
                         ids=[c[0] for c in SMALL_CLASSES])
def test_a_too_small_class_never_blocks_the_rest(kind, build, kw, classes, splits, warning, said, tmp_path):
    ds = data.load_data(build(tmp_path / "in"), tmp_path / "ws", **kw)
    assert ds.classes == classes and {s.label for s in ds.samples} == set(classes)
    for label, where in splits.items():
        assert {s.split for s in ds.samples if s.label == label} == where
    if warning:
        assert any(warning in w for w in ds.report.warnings), ds.report.warnings
    assert ds.report.small_classes == said
    assert data.Dataset.load(ds.root).report.small_classes == said      # the report keeps the choice


@pytest.mark.parametrize("kw, error, text", [
    ({"small_classes": "leave_out"}, DataError, ["Leaving out 'dog' and 'owl'", "leaves 1 class", "at least 2"]),
    ({"small_classes": "drop"}, ConfigError, ["small_classes must be one of train, leave_out", "'drop'"]),
], ids=["leaving-out-leaves-one-class", "unknown-choice"])
def test_small_class_rule_failures(kw, error, text, tmp_path):
    with pytest.raises(error) as caught:
        data.load_data(corpus.write_classes(tmp_path / "d", {"cat": 5, "dog": 1, "owl": 2}), tmp_path / "ws", **kw)
    for piece in text:
        assert piece in str(caught.value)
