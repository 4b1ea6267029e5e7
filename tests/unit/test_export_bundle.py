"""The bundle (``export --format all``), the CLI's ``--format onnx|tfjs|all``, the code to paste (each Python
snippet run as a user would, on the bundle's files) and ONNX for a multi-task model."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_evaluate_predict import make_tiny_run  # noqa: E402

from tlcore.cli import main  # noqa: E402
from tlcore.export import ARTIFACTS, SIDE_FILES  # noqa: E402
from tlcore.predict import Predictor  # noqa: E402
from tlcore.snippets import PHOTO, snippets  # noqa: E402


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """(run, the folder the bundle was unzipped into, the zip's names), made through the CLI."""
    run = make_tiny_run(tmp_path_factory.mktemp("bundlerun"))
    out = tmp_path_factory.mktemp("bundle")
    assert main(["export", str(run), "--format", "all", "--out", str(out)]) == 0
    archive = zipfile.ZipFile(out / "bundle.zip")
    archive.extractall(out / "unzipped")
    return run, out / "unzipped" / "model", archive.namelist()


def test_the_bundle_holds_every_format_the_side_files_parity_and_snippets(bundled):
    run, folder, names = bundled
    for artifact in [*ARTIFACTS.values(), *SIDE_FILES, "parity.json", "parity.md"]:
        assert (folder / artifact).exists(), artifact
    assert {"model/saved_model/saved_model.pb", "model/web/index.html", "model/web/model.onnx"} <= set(names)
    assert sorted(p.name for p in (folder / "snippets").iterdir()) == sorted(s.filename for s in snippets(run, 32))
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["ok"] is True and {r["format"] for r in parity["rows"]} >= {"keras", "onnx", "tflite-int8"}
    card = (folder / "model_card.md").read_text()
    assert "## Parity of the exported files" in card and "| model_int8.tflite | tflite |" in card
    assert "agrees" in (folder / "parity.md").read_text()
    assert (folder / "labels.txt").read_text().splitlines() == ["blue", "green", "red"]


@pytest.mark.parametrize("fmt, artifact", [("onnx", "model.onnx"), ("tfjs", "web"), ("web", "web")])
def test_the_cli_exports_one_format(bundled, tmp_path, capsys, fmt, artifact):
    run, _, _ = bundled
    assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / artifact)
    assert (tmp_path / artifact).exists() and (tmp_path / "model_card.md").is_file()


def test_the_cli_refuses_an_unknown_format_in_one_line(bundled, capsys):
    run, _, _ = bundled
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--format", "coreml", "--out", "x"])
    assert exited.value.code == 2 and "invalid choice: 'coreml'" in capsys.readouterr().err


PYTHON_SNIPPETS = ["python_keras", "python_onnx", "python_litert"]


@pytest.mark.parametrize("key", PYTHON_SNIPPETS)
def test_each_python_snippet_runs_on_the_bundle_and_names_the_studios_class(bundled, key):
    run, folder, _ = bundled
    from tlcore.data import Dataset

    image = [s.path for s in Dataset.load(run / "data").split("test")][0]
    Image.open(image).convert("RGB").save(folder / PHOTO, quality=95)
    [snippet] = [s for s in snippets(run, 32) if s.key == key]
    assert (folder / "snippets" / snippet.filename).read_text() == snippet.code
    done = subprocess.run([sys.executable, str(Path("snippets") / snippet.filename)], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    predictor = Predictor.from_run(run)
    best, probability = predictor.predict([str(folder / PHOTO)], top_k=1)[0][0]
    label, percent = done.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert label == best and abs(float(percent.rstrip("%")) - 100 * probability) <= 1.5


def test_snippets_carry_the_download_names_size_and_classes(bundled):
    run, _, _ = bundled
    parts = {s.key: s for s in snippets(run, 32, name=lambda f: f"tiny-abc123-{f}")}
    assert set(parts) == {*PYTHON_SNIPPETS, "browser", "android", "curl"}
    assert 'load_model("tiny-abc123-model.keras")' in parts["python_keras"].code
    assert '["blue", "green", "red"]' in parts["python_onnx"].code and "32x32" in parts["python_onnx"].code
    assert "(1, 32, 32, 3)" in parts["python_litert"].code
    assert "tiny-abc123-model.tflite" in parts["android"].code and "FloatArray(3)" in parts["android"].code
    assert f"/v1/models/{run.name}:predict" in parts["curl"].code and "-F \"image=@" in parts["curl"].code
    assert "ort.wasm.min.js" in parts["browser"].code


def test_onnx_keeps_every_output_of_a_multitask_model():
    from tlcore.onnx_export import onnx_bytes, onnx_session
    from tlcore.tf_env import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Resizing(8, 8, name="resize")(inputs))
    model = keras.Model(inputs, {"species": keras.layers.Dense(3, activation="softmax", name="species")(x),
                                 "colour": keras.layers.Dense(2, activation="softmax", name="colour")(x)})
    session = onnx_session(onnx_bytes(model))
    x = np.random.default_rng(0).uniform(0, 255, (2, 12, 9, 3)).astype("float32")
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))
    expected = model(x)
    assert set(got) == {"species", "colour"}
    for key in got:
        np.testing.assert_allclose(got[key], np.asarray(expected[key]), atol=1e-5)
