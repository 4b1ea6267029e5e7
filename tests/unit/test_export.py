"""tlcore.export: every format loads and agrees with the studio's predictions; a full disk leaves no file behind."""
from __future__ import annotations

import errno
import io
import json
import os
import re
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
from tlcore.export_formats import EXPORT_FORMATS, NEEDS, RUNTIMES, format_entry  # noqa: E402
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
    strategy = json.loads((run / "config.json").read_text())["strategy"]   # the default strategy, whichever it is
    for text in ("MobileNet α=0.25", "random initialisation", f"`{strategy}`", "| red |", "accuracy",
                 "## Intended use and limitations", "## How to load", "(1, 32, 32, 3)"):
        assert text in card


def _loads_in_keras(path: Path, x: np.ndarray, reference: np.ndarray) -> None:
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(reloaded(x).numpy(), reference, atol=1e-6)


def _loads_in_tensorflow(path: Path, x: np.ndarray, reference: np.ndarray) -> None:
    loaded = tf.saved_model.load(str(path))   # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(served.numpy(), reference, atol=1e-5)


def _loads_in_tflite(path: Path, x: np.ndarray, reference: np.ndarray) -> None:
    """TFLite files take raw pixels of fixed size and return probabilities."""
    interpreter = export.tflite_interpreter(path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 32, 32, 3) and inp["dtype"] == np.float32 and out["dtype"] == np.float32
    probs = export.tflite_probabilities(path, x)
    assert probs.shape == reference.shape
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-2)


def _loads_in_onnxruntime(path: Path, x: np.ndarray, reference: np.ndarray) -> None:
    """ONNX: input ``image`` with a dynamic batch and image size, output ``probabilities``."""
    from tlcore.onnx_export import onnx_probabilities, onnx_session

    session = onnx_session(path)
    [inp], [out] = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, out.name) == ("image", "tensor(float)", "probabilities")
    assert [isinstance(d, str) for d in inp.shape] == [True, True, True, False] and inp.shape[-1] == 3
    np.testing.assert_allclose(onnx_probabilities(path, x), reference, atol=1e-5)
    bigger = tf.image.resize(x, (45, 37)).numpy()   # another size: the graph resizes it, as Keras does
    reloaded = keras.saving.load_model(path.parent / "model.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(onnx_probabilities(path, bigger), reloaded(bigger).numpy(), atol=1e-5)


def _loads_in_the_web_page(path: Path, x: np.ndarray, reference: np.ndarray) -> None:
    """The web folder: index.html, labels.json and the model.onnx the page runs (the browser test runs the page)."""
    assert {"index.html", "model.onnx", "labels.json"} <= {p.name for p in path.iterdir()}
    assert json.loads((path / "labels.json").read_text()) == ["blue", "green", "red"]
    html = (path / "index.html").read_text()
    assert "ort.wasm.min.js" in html and 'type="file"' in html and "const SIZE = 32" in html
    from tlcore.onnx_export import onnx_probabilities

    np.testing.assert_allclose(onnx_probabilities(path / "model.onnx", x), reference, atol=1e-5)


# One check per runtime of tlcore.export_formats.RUNTIMES: a new runtime needs its check here.
RUNTIME_CHECKS = {"keras": _loads_in_keras, "tensorflow": _loads_in_tensorflow, "tflite": _loads_in_tflite,
                  "onnxruntime": _loads_in_onnxruntime, "onnxruntime-web": _loads_in_the_web_page}


def test_every_runtime_of_the_table_has_a_check():
    assert {e.runtime for e in EXPORT_FORMATS.values()} <= set(RUNTIME_CHECKS) == set(RUNTIMES)
    assert set(export.FORMATS) == set(EXPORT_FORMATS) and all(
        set(e.needs) <= set(NEEDS) and callable(e.write_function()) for e in EXPORT_FORMATS.values())


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_every_format_loads_in_its_runtime(exported, batch, fmt):
    _, paths = exported
    entry = EXPORT_FORMATS[fmt]
    assert paths[fmt].name == entry.artifact and paths[fmt].is_dir() == entry.folder
    RUNTIME_CHECKS[entry.runtime](paths[fmt], *batch)


def test_int8_is_less_than_half_the_size_of_float32(exported):
    _, paths = exported
    assert paths["tflite-int8"].stat().st_size < paths["tflite"].stat().st_size / 2


def test_parity_matrix_has_a_row_per_format_and_flags_none(exported):
    from tlcore.export_formats import parity_formats
    from tlcore.model_card import model_card
    from tlcore.parity import parity_matrix

    run, _ = exported
    result = parity_matrix(run)
    assert json.loads((run / "parity.json").read_text()) == result
    assert result["n"] == 6 and result["split"] == "test" and result["ok"] is True
    rows = {row["format"]: row for row in result["rows"]}
    assert list(rows) == [e.name for e in parity_formats()] and {"keras", "savedmodel", "onnx", "tflite-int8"} <= set(rows)
    for name in ("keras", "savedmodel", "tflite", "onnx"):
        assert rows[name]["agree"] == 1.0 and rows[name]["max_abs_diff"] < 1e-4 and not rows[name]["flagged"], name
    assert rows["tflite-int8"]["flag_at"] == 0.03 and rows["keras"]["flag_at"] == 0.01
    assert rows["tflite-int8"]["accuracy"] is not None and result["reference_accuracy"] is not None
    card = model_card(run)
    assert "## Parity of the exported files" in card and "| model.onnx | onnxruntime | 100.0% |" in card


def test_parity_matrix_flags_a_format_that_disagrees_and_lists_its_images(exported, monkeypatch):
    from tlcore import parity
    from tlcore.model_card import parity_lines

    run, _ = exported
    swapped = lambda path, batch, predictor: parity._onnx(path, batch, predictor)[:, ::-1]  # noqa: E731
    monkeypatch.setitem(parity.RUNNERS, "onnxruntime", swapped)
    result = parity.parity_matrix(run, formats=["keras", "onnx"])
    rows = {row["format"]: row for row in result["rows"]}
    assert result["ok"] is False and rows["onnx"]["flagged"] and not rows["keras"]["flagged"]
    assert rows["onnx"]["disagree"] == len(rows["onnx"]["images"]) > 0
    assert all(name.endswith(".png") for name in rows["onnx"]["images"])
    text = "\n".join(parity_lines(result))
    assert "model.onnx disagrees on: " + rows["onnx"]["images"][0] in text and "flagged: differs on" in text
    parity.parity_matrix(run)   # leave a clean parity.json for the other tests


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
        export.export_run(run, "coreml", tmp_path)
    with pytest.raises(ConfigError) as unknown:
        format_entry("coreml")
    assert format_entry("tfjs").name == "web"   # TF.js cannot be installed beside TF 2.21: the web page instead
    assert "'coreml'" in str(unknown.value) and all(name in str(unknown.value) for name in EXPORT_FORMATS)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text((run / "config.json").read_text())
    with pytest.raises(RunError, match="train it first"):
        export.export_run(tmp_path / "run", "keras", tmp_path / "out")


# -- the model card: prose and tables, only the strategy's own settings; download names -----------------------
def card_for(tmp_path, **settings) -> str:
    """The model card of a run folder whose config has ``settings`` (labels, counts and evaluation recorded)."""
    from tlcore.runs import RunConfig

    run = tmp_path / "runs" / "card"
    run.mkdir(parents=True)
    (run / "config.json").write_text(RunConfig(**{"data": "dataset:abc", "name": "My | birds", **settings}).to_json())
    (run / "labels.json").write_text(json.dumps(["finch", "robin", "wren"]))
    (run / "data_report.json").write_text(json.dumps({"counts": {"train": {"finch": 5, "robin": 6, "wren": 7},
                                                                 "test": {"finch": 1, "robin": 2, "wren": 3}}}))
    (run / "evaluation.json").write_text(json.dumps({
        "n": 6, "split": "test", "accuracy": 5 / 6, "accuracy_ci95": [0.44, 0.97], "macro_f1": 0.8,
        "per_class": [{"class": c, "precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 2}
                      for c in ("finch", "robin", "wren")]}))
    return export.model_card(run, image_size=96)


def assert_prose(card: str) -> None:
    assert "{" not in card.split("## How to load")[0] and '": ' not in card, card   # no JSON anywhere above the code
    for raw in ("all_but_top", "fine_tune_epochs", "label_columns", "target_data", "n_way", "True", "False", "None"):
        assert raw not in card.split("## How to load")[0], raw


def test_card_of_feature_extraction_is_prose_and_lists_only_its_settings(tmp_path):
    card = card_for(tmp_path, strategy="feature_extraction", epochs=7, head={"units": 64, "dropout": 0.2,
                                                                             "enabled": True})
    assert_prose(card)
    assert "# Model card: My | birds" in card and "(Feature extraction) on MobileNet α=0.25" in card
    assert "| Epochs (at most) | 7 |" in card and "| Optimiser | Adam |" in card
    assert "a dense layer of 64 units (ReLU) → dropout 0.2 → softmax" in card
    assert "| Image size | 96×96 |" in card and "| Augmentation | off |" in card
    assert "| finch | 5 | 1 |" in card and "| class | training | test |" in card
    assert "its accuracy is 83.3% (95% confidence: 44% to 97%)" in card
    assert "top 3" not in card                     # top-k is meaningless with 3 classes, and was not measured
    for other in ("fine-tuning", "Fine-tuning", "target images", "Label columns", "Learned projection"):
        assert other not in card, other


def test_card_of_fine_tuning_adds_its_two_phases_and_the_frozen_layers(tmp_path):
    card = card_for(tmp_path, strategy="fine_tune", epochs=4, fine_tune_epochs=3, fine_tune_learning_rate=1e-5,
                    freeze={"mode": "all_but_top", "n": 20, "layer": None})
    assert_prose(card)
    assert "| Epochs of the head (frozen backbone) | 4 |" in card and "| Epochs of fine-tuning | 3 |" in card
    assert "| Learning rate of fine-tuning | 1e-05 |" in card
    assert "| Layers trained in fine-tuning | the top 20 layers of the backbone; BatchNorm layers stay frozen" in card


def test_card_of_scratch_says_random_weights_and_no_freeze(tmp_path):
    card = card_for(tmp_path, strategy="scratch", weights="imagenet")   # scratch ignores the weights setting
    assert_prose(card)
    assert "starting from random initialisation" in card and "ImageNet" not in card
    assert "fine-tuning" not in card and "Layers trained" not in card


def test_card_of_domain_adaptation_names_the_target_and_its_options(tmp_path):
    card = card_for(tmp_path, strategy="domain_adaptation", target_data="/data/webcam.zip",
                    options={"baseline": True, "lambda_max": 0.5, "method": "dann"})
    assert_prose(card)
    assert "| Unlabelled target images | webcam.zip |" in card
    assert "| Source-only model trained alongside for comparison | yes |" in card
    assert "| Strength of the domain confusion (at most) | 0.5 |" in card
    for other in ("| Optimiser |", "Head", "Early stopping", "Label columns", "fine-tuning"):
        assert other not in card, other


def test_card_of_multitask_lists_the_label_columns_and_their_weights(tmp_path):
    card = card_for(tmp_path, strategy="multitask", data="x.csv", label_columns=["species", "colour"],
                    options={"loss_weights": {"species": 1.0, "colour": 0.5}})
    assert_prose(card)
    assert "| Label columns | species, colour |" in card
    assert "| Weight of each label column in the loss | species: 1, colour: 0.5 |" in card
    assert "target images" not in card and "fine-tuning" not in card


def test_card_of_few_shot_lists_training_settings_only_with_a_projection(tmp_path):
    plain = card_for(tmp_path / "a", strategy="few_shot", options={"projection": False})
    assert_prose(plain)
    assert "| Learned projection | no |" in plain
    assert "Epochs" not in plain and "Optimiser" not in plain and "Head" not in plain
    projected = card_for(tmp_path / "b", strategy="few_shot", epochs=5, options={"projection": True, "n_way": 3})
    assert "| Epochs (at most) | 5 |" in projected and "| Classes per training episode | 3 |" in projected


@pytest.mark.parametrize("name, filename", [
    ("Feature extraction · MobileNet α=0.25", "model.keras"),
    ("grüne Äpfel / ../../etc", "labels.txt"),
    ("", "saved_model.zip"),
    ("<img src=x onerror=alert(1)>", "model_card.md"),
])
def test_download_names_carry_the_run_name_and_short_id(name, filename):
    got = export.download_name(name, "20261201-213618-e63603cc9cd5", filename)
    assert got.endswith(f"-cc9cd5-{filename}") and re.fullmatch(r"[A-Za-z0-9._-]+", got)   # no folder parts
    stem = got[: -len(f"-cc9cd5-{filename}")]
    assert stem and not stem.startswith((".", "-"))
    if name.startswith("Feature"):
        assert stem.lower().startswith("feature-extraction-mobilenet")


def test_download_names_of_two_runs_do_not_collide():
    names = {export.download_name("Fine-tuning · VGG16", rid, "model.keras")
             for rid in ("20261201-1-aaaaaa111111", "20261201-1-aaaaaa222222")}
    assert len(names) == 2


def test_card_knows_every_registered_strategy():
    from tlcore import model_card
    from tlcore.strategies import STRATEGIES

    assert set(model_card.STRATEGY_FIELDS) == set(model_card.STRATEGY_SUMMARY) == set(STRATEGIES)
