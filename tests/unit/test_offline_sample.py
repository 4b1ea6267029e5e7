"""Offline, from an empty Keras cache: the sample gets the shipped ImageNet MobileNet and learns the shapes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import MOBILENET_FILE, ROOT

from tlcore import backbones
from tlcore import workspace as ws
from tlcore.runs import RunConfig

# Any download attempt goes to a closed port and fails at once: "offline" is enforced, not assumed.
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def cli(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcore", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **OFFLINE, **env}, cwd=ROOT, timeout=600)


def test_sample_run_offline_from_an_empty_keras_home_reaches_90_percent(tmp_path):
    keras_home = tmp_path / "empty_keras_home"          # does not even exist yet
    env = {"KERAS_HOME": str(keras_home), "TLS_WORKSPACE": str(tmp_path / "ws")}
    data = tmp_path / "shapes"
    assert cli("sample", data, env=env).returncode == 0
    model, train, note = ws.sample_settings(True)        # exactly what "Try it with a sample" chooses
    assert train["strategy"] == "feature_extraction" and model["weights"] == "imagenet" and "ImageNet" in note
    config = tmp_path / "sample.json"
    config.write_text(RunConfig.from_dict({**model, **train, "data": str(data)}).to_json())
    out = cli("train", "--config", config, "--quiet", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["n"] >= 15 and evaluation["accuracy"] >= 0.9, evaluation["accuracy"]
    assert json.loads((run_dir / "config.json").read_text())["weights"] == "imagenet"
    cached = keras_home / "models" / MOBILENET_FILE
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == backbones.SHIPPED_WEIGHTS[MOBILENET_FILE]
    assert [p.name for p in cached.parent.iterdir()] == [MOBILENET_FILE]   # no temporary file left behind


def test_try_sample_copies_the_shipped_weights_and_chooses_imagenet_feature_extraction(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    steps: list[str] = []
    info, note = ws.try_sample("u:sampleowner", workspace=tmp_path / "ws", progress=steps.append)
    draft = ws.load_draft("u:sampleowner", workspace=tmp_path / "ws")
    assert info.kind == "sample" and "ImageNet weights and feature extraction" in note
    assert [s.split()[0] for s in steps] == ["Drawing", "Putting", "Choosing"], steps   # the Home page shows these
    assert "feature extraction, 10 epochs" in steps[-1]
    assert draft["model"]["weights"] == "imagenet" and draft["train"]["strategy"] == "feature_extraction"
    assert (tmp_path / "keras_home" / "models" / MOBILENET_FILE).is_file()


def test_try_sample_falls_back_to_scratch_honestly_when_the_shipped_file_is_damaged(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / MOBILENET_FILE).write_bytes(b"not the weights")
    monkeypatch.setattr(backbones, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    _, note = ws.try_sample("u:sampleowner", workspace=tmp_path / "ws")
    draft = ws.load_draft("u:sampleowner", workspace=tmp_path / "ws")
    assert draft["model"]["weights"] == "none" and draft["train"]["strategy"] == "scratch"
    assert "missing or damaged" in note and "reinstall the studio" in note
    assert not (tmp_path / "keras_home" / "models" / MOBILENET_FILE).exists()
