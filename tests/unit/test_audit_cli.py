"""`python -m tlcore audit --data PATH [--json]`: the one JSON object of the data check, and bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, write_colour_images
from tlcore import cli

KEYS = {"label_issues", "duplicates", "near_duplicates", "leaks", "outliers", "class_names"}


def _messy(root: Path) -> Path:
    """Colour classes with a byte-identical copy across classes, a wrongly filed red image in 'blue', a copy of a
    training image in the test split, and two classes whose names differ only by case."""
    data = root / "messy"
    write_colour_images(data / "train", per_class=12, classes={"red": (220, 30, 30), "blue": (30, 40, 220),
                                                              "Green": (30, 200, 40)})
    write_colour_images(data / "valid", per_class=2, seed=3, classes={"red": (220, 30, 30), "blue": (30, 40, 220),
                                                                     "Green": (30, 200, 40)})
    write_colour_images(data / "test", per_class=2, seed=4, classes={"red": (220, 30, 30), "blue": (30, 40, 220),
                                                                    "Green": (30, 200, 40)})
    shutil.copy(data / "train" / "red" / "5.png", data / "train" / "blue" / "wrong.png")
    shutil.copy(data / "train" / "green".capitalize() / "3.png", data / "test" / "Green" / "leaked.png")
    (data / "train" / "green").mkdir()
    for i in (0, 1, 2):
        shutil.copy(data / "train" / "Green" / f"{i}.png", data / "train" / "green" / f"g{i}.png")
    return data


@pytest.fixture(scope="module")
def messy(tmp_path_factory, imagenet_mobilenet) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("audit")
    return _messy(root), root / "ws"


def test_audit_json_is_one_object_with_source_paths(messy, capsys):
    data, ws = messy
    assert cli.main(["audit", "--data", str(data), "--json", "--workspace", str(ws)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= set(result)
    # paths are the source's own names, never the workspace's copies
    every = [p for kind in ("duplicates", "near_duplicates", "leaks") for item in result[kind] for p in item["paths"]]
    every += [item["path"] for kind in ("label_issues", "outliers") for item in result[kind]]
    assert every and all(not Path(p).is_absolute() and p.split("/")[0] in {"train", "valid", "test"} for p in every)
    dupes = [sorted(d["paths"]) for d in result["duplicates"]]
    assert ["train/blue/wrong.png", "train/red/5.png"] in dupes
    assert all(d["similarity"] == 1.0 for d in result["duplicates"])
    leaks = {tuple(sorted(x["paths"])): x["splits"] for x in result["leaks"]}
    assert leaks[("test/Green/leaked.png", "train/Green/3.png")] == ["test", "train"]
    wrong = [x for x in result["label_issues"] if x["path"] == "train/blue/wrong.png"]
    assert wrong and wrong[0]["given"] == "blue" and wrong[0]["suggested"] == "red" and 0 < wrong[0]["score"] <= 1
    scores = [x["score"] for x in result["label_issues"]]
    assert scores == sorted(scores, reverse=True)                  # most suspect first
    assert result["class_names"] == [{"names": ["Green", "green"], "reason": "they differ only by case"}]
    assert result["about"]["features_reused"] == 0


def test_a_second_audit_reuses_the_stored_features_and_prints_text(messy, capsys):
    data, ws = messy
    assert cli.main(["audit", "--data", str(data), "--json", "--workspace", str(ws)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["about"]["features_reused"] == again["about"]["images"]
    assert cli.main(["audit", "--data", str(data), "--workspace", str(ws)]) == 0
    text = capsys.readouterr().out
    assert "likely label errors" in text and "train/blue/wrong.png" in text and "'Green' / 'green'" in text


def _folder_with_one_class(root: Path) -> Path:
    write_colour_images(root / "one", per_class=4, classes={"cat": (200, 100, 50)})
    return root / "one"


def _not_a_dataset(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "photo.png").write_bytes(b"\x89PNG not really")
    return root / "photo.png"


def _empty(root: Path) -> Path:
    (root / "empty").mkdir(parents=True)
    return root / "empty"


BAD = [
    ("missing-path", lambda root: root / "nowhere", [], "does not exist"),
    ("not-folder-zip-or-csv", _not_a_dataset, [], "not a folder, a .zip or a .csv"),
    ("empty-folder", _empty, [], "At least 2 classes"),
    ("one-class", _folder_with_one_class, [], "1 class"),
    ("unknown-backbone", _empty, ["--backbone", "resnet9000"], "resnet9000"),
]


@pytest.mark.parametrize("build,extra,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_audit_bad_input_is_one_line_and_exit_2(tmp_path, capsys, build, extra, message):
    source = build(tmp_path / "in")
    code = cli.main(["audit", "--data", str(source), "--json", "--workspace", str(tmp_path / "ws"), *extra])
    out = capsys.readouterr()
    assert code == cli.EXIT_BAD_INPUT and out.out == ""
    assert out.err.startswith("error: ") and message in out.err and "Traceback" not in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_audit_without_data_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "tlcore", "audit", "--json"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == cli.EXIT_BAD_INPUT and "--data" in out.stderr and "Traceback" not in out.stderr


def test_the_background_check_of_a_dataset_and_a_second_check_on_its_fixed_version(tmp_path, imagenet_mobilenet):
    from tlcore import workspace as ws

    owner = "u:" + "d" * 24
    src = write_colour_images(tmp_path / "src", per_class=8)
    shutil.copy(src / "red" / "1.png", src / "blue" / "copy.png")
    ws_dir = tmp_path / "ws"
    (ws_dir / "data").mkdir(parents=True)
    from tlcore.dataset_imports import _import
    from tlcore.data import from_folder

    info = _import(owner, "colours", "server", lambda dest: from_folder(src, dest), ws_dir)
    assert ws.check_status(info.id)["state"] == "idle" and ws.load_check(owner, info.id, workspace=ws_dir) is None
    ws.start_check(owner, info.id, workspace=ws_dir)
    from tlcore.audit_jobs import wait_check

    assert wait_check(info.id, timeout=300)["state"] == "done"
    first = ws.load_check(owner, info.id, workspace=ws_dir)
    assert [sorted(d["paths"]) for d in first["duplicates"]] == [["blue/copy.png", "red/1.png"]]
    assert first["dataset"] == info.id
    v2 = ws.new_version(owner, info.id, {"remove": ["blue/copy.png"]}, workspace=ws_dir)
    ws.start_check(owner, v2.id, workspace=ws_dir)
    assert wait_check(v2.id, timeout=300)["state"] == "done"
    second = ws.load_check(owner, v2.id, workspace=ws_dir)
    assert second["duplicates"] == [] and second["about"]["features_reused"] == second["about"]["images"]
    assert ws.load_check(owner, info.id, workspace=ws_dir) == first                 # v1's result is kept


def test_audit_has_help(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["audit", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--data" in out and "--json" in out and "near-duplicates" in out
