"""tlcore.export: every format loads and agrees with the studio's predictions; a full disk leaves no file behind."""
from __future__ import annotations

import errno
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_evaluate_predict import make_tiny_run  # noqa: E402

from tlcore import export  # noqa: E402
from tlcore.errors import ConfigError, ExportError, RunError  # noqa: E402
from tlcore.evaluate import evaluate_run  # noqa: E402
from tlcore.predict import Predictor  # noqa: E402
from tlcore.tf_env import keras, tf  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A tiny run, evaluated, with every format exported into its exports/ folder (one shared TFLite source)."""
    run = make_tiny_run(tmp_path_factory.mktemp("exportrun"))
    evaluate_run(run)
    return run, export.export_all(run, run / "exports", export.FORMATS)


@pytest.fixture(scope="module")
def batch(exported):
    run, _ = exported
    from tlcore.data import Dataset

    predictor = Predictor.from_run(run)
    paths = [s.path for s in Dataset.load(run / "data").split("test")]
    x = predictor.prepare(paths)
    return x, predictor.probabilities(paths)


def test_every_format_is_written_with_labels_config_and_card(exported):
    run, paths = exported
    out = run / "exports"
    assert {f: p.name for f, p in paths.items()} == export.ARTIFACTS
    assert sorted(p.name for p in out.iterdir()) == sorted([*export.ARTIFACTS.values(), *export.SIDE_FILES])
    assert (out / "labels.txt").read_text().splitlines() == ["blue", "green", "red"]
    assert json.loads((out / "config.json").read_text()) == json.loads((run / "config.json").read_text())
    card = (out / "model_card.md").read_text()
    for text in ("MobileNet α=0.25", "random initialisation", "feature_extraction", "| red |", "accuracy",
                 "## Intended use and limitations", "## How to load", "(1, 32, 32, 3)"):
        assert text in card


def test_keras_and_savedmodel_give_the_same_probabilities(exported, batch):
    _, paths = exported
    x, reference = batch
    reloaded = keras.saving.load_model(paths["keras"], safe_mode=True, compile=False)
    np.testing.assert_allclose(reloaded(x).numpy(), reference, atol=1e-6)
    loaded = tf.saved_model.load(str(paths["savedmodel"]))   # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), reference, atol=1e-5)


def test_tflite_files_take_raw_pixels_of_fixed_size(exported, batch):
    _, paths = exported
    x, reference = batch
    for fmt in ("tflite", "tflite-float16", "tflite-int8"):
        interpreter = export.tflite_interpreter(paths[fmt])
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        assert tuple(inp["shape"]) == (1, 32, 32, 3) and inp["dtype"] == np.float32 and out["dtype"] == np.float32
        probs = export.tflite_probabilities(paths[fmt], x)
        assert probs.shape == reference.shape
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-2)
    assert paths["tflite-int8"].stat().st_size < paths["tflite"].stat().st_size / 2


def test_parity_check_agrees_and_reports_int8(exported):
    run, _ = exported
    result = export.parity_check(run, max_images=50)
    assert json.loads((run / "parity.json").read_text()) == result
    assert result["n"] == 6 and result["ok"] is True
    assert result["keras_agree"] == 1.0 and result["keras_max_abs_diff"] < 1e-6
    assert result["tflite_agree"] == 1.0 and result["tflite_max_abs_diff"] < 1e-4
    assert 0.0 <= result["tflite_int8_agree"] <= 1.0 and result["tflite_int8_max_abs_diff"] < 0.5
    assert "tflite_float16_agree" in result


def test_zip_dir_of_savedmodel(exported, tmp_path):
    _, paths = exported
    data = export.zip_dir(paths["savedmodel"])
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "saved_model/saved_model.pb" in names
    dest = export.zip_dir(paths["savedmodel"], tmp_path / "sm.zip")
    assert dest.read_bytes()[:2] == b"PK"


def _full_disk(real):
    """A writer that writes half of what it is given and then fails as a full disk does."""
    index = 1 if real is export._copy else 0   # _copy(src, dst) / _dump(path, data)

    def write(*args):
        real(*args)
        target = Path(args[index])
        target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 2)])
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


def test_full_disk_leaves_no_file(exported, tmp_path, monkeypatch):
    run, _ = exported
    out = tmp_path / "out"
    monkeypatch.setattr(export, "_copy", _full_disk(export._copy))
    with pytest.raises(ExportError, match="Not enough disk space to export keras .*free some space"):
        export.export_run(run, "keras", out)
    assert os.listdir(out) == []


def test_full_disk_keeps_the_previous_good_export(exported, tmp_path, monkeypatch):
    run, _ = exported
    out = tmp_path / "out"
    good = export.export_run(run, "keras", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_dump = export._dump
    monkeypatch.setattr(export, "_dump", lambda path, data: (_full_disk(real_dump) if path.name == "model_card.md"
                                                             else real_dump)(path, data))
    with pytest.raises(ExportError, match="Not enough disk space"):
        export.export_run(run, "keras", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and good.is_file()


def test_bad_format_and_untrained_run(exported, tmp_path):
    run, _ = exported
    with pytest.raises(ConfigError, match="tflite-int8"):
        export.export_run(run, "onnx", tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text((run / "config.json").read_text())
    with pytest.raises(RunError, match="train it first"):
        export.export_run(tmp_path / "run", "keras", tmp_path / "out")
