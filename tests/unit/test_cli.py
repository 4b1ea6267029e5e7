"""The stable command line: every command, its JSON, and one-line errors with a non-zero exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, tiny_config


def cli(*args, workspace=None, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if workspace:
        env["TLS_WORKSPACE"] = str(workspace)
    out = subprocess.run([sys.executable, "-m", "tlcore", *map(str, args)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run trained through the CLI, reused by the read-only commands (a new process each time)."""
    from helpers import write_colour_images

    root = tmp_path_factory.mktemp("cli")
    data = write_colour_images(root / "data", per_class=10)
    config = root / "run.json"
    config.write_text(tiny_config(data, backbone="vgg16", epochs=4).to_json())
    out = cli("train", "--config", config, "--workspace", root / "ws")
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir() and (run_dir / "model.keras").is_file()
    return root, run_dir, data


def test_train_prints_the_run_folder_last_and_replays_its_config(trained):
    root, run_dir, _ = trained
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["backbone"] == "vgg16" and saved["image_size"] == 32
    assert (run_dir / "data" / "dataset.json").is_file()


def test_evaluate_json_in_a_new_process(trained):
    root, run_dir, _ = trained
    result = json.loads(cli("evaluate", run_dir, "--json").stdout)
    assert {"accuracy", "per_class", "confusion_matrix"} <= set(result)
    assert len(result["confusion_matrix"]) == 3
    # calibration: the ECE after and before the run's temperature, the temperature, the reliability diagram's bins
    assert 0 <= result["ece"] <= 1 and 0 <= result["ece_uncalibrated"] <= 1 and result["temperature"] > 0
    assert sum(b["count"] for b in result["reliability"]) == result["n"] and result["tta"] is False
    flipped = json.loads(cli("evaluate", run_dir, "--json", "--tta").stdout)
    assert flipped["tta"] is True and flipped["n"] == result["n"]


def test_evaluate_and_predict_by_run_id(trained):
    root, run_dir, data = trained
    image = next((data / "green").iterdir())
    out = cli("predict", run_dir.name, image, "--top-k", "2", "--json", workspace=root / "ws")
    [row] = json.loads(out.stdout)
    assert len(row["top"]) == 2 and row["top"][0]["class"] in ("red", "green", "blue")
    assert row["top"][0]["probability"] >= row["top"][1]["probability"]
    # the run's own doubt: confident / unsure / unknown, its confidence and the distance from the classes
    assert row["status"] in ("confident", "unsure", "unknown") and row["confidence"] == row["top"][0]["probability"]
    assert isinstance(row["ood_score"], float)


def test_export_keras(trained, tmp_path):
    _, run_dir, _ = trained
    out = cli("export", run_dir, "--format", "keras", "--out", tmp_path / "exp")
    assert Path(out.stdout.strip().splitlines()[-1]).exists()
    assert (tmp_path / "exp" / "labels.txt").read_text().split() == ["blue", "green", "red"] or \
        sorted((tmp_path / "exp" / "labels.txt").read_text().split()) == ["blue", "green", "red"]


def test_backbones_json():
    rows = json.loads(cli("backbones", "--json").stdout)
    assert any(r["name"] == "mobilenet_025" for r in rows) and len(rows) >= 20


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/no/such/place"], "does not exist"),
    (["train"], "No data given"),
    (["train", "--data", ".", "--backbone", "alexnet"], "Unknown backbone 'alexnet'"),
    (["train", "--data", ".", "--strategy", "magic"], "Unknown strategy 'magic'"),
    (["train", "--data", ".", "--workers", "0"], "workers must be a whole number from 1 to 64"),
    (["train", "--data", ".", "--workers", "2"], "workers above 1 work with the scratch, fine_tune and"),
    (["train", "--data", ".", "--config", "/no/config.json"], "does not exist"),
    (["evaluate", "no-such-run"], "There is no run"),
    (["predict", "no-such-run", "x.jpg"], "There is no run"),
    (["export", "no-such-run", "--format", "coreml", "--out", "x"], "invalid choice"),
    (["export", "no-such-run", "--format", "onnx", "--out", "x"], "There is no run"),
    (["serve", "no-such-run"], "There is no run"),
    (["frobnicate"], "invalid choice"),
    (["compare", "--data", ".", "--strategies", "domain_adaptation"], "needs unlabelled target images"),
    (["compare", "--data", ".", "--freezes", "half"], "Unknown --freezes value 'half'"),
    (["compare", "--data", ".", "--backbones", "vgg16,alexnet"], "Unknown backbone 'alexnet'"),
])
def test_bad_input_exits_non_zero_with_one_line(args, message, tmp_path):
    out = cli(*args, workspace=tmp_path, check=False)
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr


@pytest.mark.parametrize("command", ["backbones", "train", "compare", "evaluate", "predict", "export", "runs", "sample",
                                     "serve"])
def test_every_command_has_help(command):
    assert "usage" in cli(command, "--help").stdout


def test_compare_trains_each_strategy_on_the_same_split_and_prints_them_side_by_side(trained, tmp_path):
    root, _, data = trained
    config = tmp_path / "base.json"
    config.write_text(tiny_config(data, backbone="vgg16", epochs=2).to_json())
    out = cli("compare", "--config", config, "--strategies", "feature_extraction,scratch", "--json", "--quiet",
              "--workspace", tmp_path / "ws")
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(r["strategy"], r["state"]) for r in rows] == [("feature_extraction", "done"), ("scratch", "done")]
    assert len({r["group"] for r in rows}) == 1 and all(0 <= r["accuracy"] <= 1 for r in rows)
    configs = [json.loads((tmp_path / "ws" / "runs" / r["run"] / "config.json").read_text()) for r in rows]
    assert {(c["data"], c["seed"], c["val_split"]) for c in configs} == {(str(data), 0, 0.2)}


def test_train_help_lists_every_registered_strategy_one_line_each_without_tensorflow():
    from tlcore import cli as cli_module
    from tlcore.compare import TITLES
    from tlcore.strategies import STRATEGIES

    assert set(cli_module.STRATEGY_LINES) == set(STRATEGIES) == set(TITLES)
    code = ("import sys; from tlcore.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip().endswith("NO-TF"), out.stdout[-500:]
    text = out.stdout
    assert "and more" not in text
    for name, strategy in STRATEGIES.items():
        [line] = [row for row in text.splitlines() if row.strip().startswith(name + " ")]
        assert strategy.title in line and len(line.split(name, 1)[1].strip()) > len(strategy.title) + 10, line
    assert "compare" in cli("compare", "--help").stdout and "few_shot" in cli("compare", "--help").stdout
