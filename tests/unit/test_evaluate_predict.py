"""tlcore.evaluate and tlcore.predict on a tiny trained run and on a model whose predictions are known exactly.

``make_tiny_run`` (also used by test_export.py and test_explain_embed.py) writes a complete run folder:
noisy solid-colour PNGs, a 32 px MobileNet α=0.25 with a 16-unit head trained on them, labels, config, report.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tlcore.data import DataReport, Dataset, Sample, load_data
from tlcore.errors import DataError, ImageError, RunError
from tlcore.evaluate import evaluate_model, evaluate_run, predict_paths, wilson_interval
from tlcore.predict import Predictor, load_labels, load_run_model, predict_table
from tlcore.runs import RunConfig, atomic_write
from tlcore.tf_env import keras

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def colour_image(rgb, size=(36, 28), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype("uint8")
    return Image.fromarray(pixels)


def write_colours(root: Path, per_class: int = 8, colours=COLOURS) -> Path:
    for k, (name, rgb) in enumerate(colours.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour_image(rgb, (28 + 2 * i, 40 - i), seed=100 * k + i).save(root / name / f"{name}{i}.png")
    return root


def _he_init(backbone: keras.Model, seed: int = 0) -> None:
    """Random MobileNet features vanish (~1e-17 after 27 layers at 32 px); larger (He-like) kernels keep them alive."""
    rng = np.random.default_rng(seed)
    for layer in backbone.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            shape = tuple(layer.kernel.shape)
            fan_in = shape[0] * shape[1] * (1 if isinstance(layer, keras.layers.DepthwiseConv2D) else shape[2])
            layer.kernel.assign(rng.normal(0, np.sqrt(3.3 / fan_in), shape).astype("float32"))


def make_tiny_run(root: Path, per_class: int = 8) -> Path:
    """A finished run folder under ``root/runs/tiny`` (data imported into its ``data/`` folder)."""
    from tlcore.backbones import create_backbone, get_spec
    from tlcore.model import HeadConfig, build_model, feature_model
    from tlcore.pipeline import image_dataset

    src = write_colours(root / "src", per_class)
    run = root / "runs" / "tiny"
    run.mkdir(parents=True)
    config = RunConfig(data=str(src), weights="none", image_size=32, batch_size=8, epochs=1, name="tiny",
                       head={"units": 16, "dropout": 0.0, "enabled": True}, val_split=0.2, test_split=0.3)
    atomic_write(run / "config.json", config.to_json())
    dataset = load_data(src, run / "data", val_split=0.2, test_split=0.3, seed=0)
    keras.utils.set_random_seed(0)
    backbone = create_backbone("mobilenet_025", "none", 32)
    _he_init(backbone)
    model = build_model(backbone, get_spec("mobilenet_025"), 3, HeadConfig(units=16, dropout=0.0), 32)
    train = dataset.split("train")
    x = np.concatenate([feature_model(model)(b).numpy() for b in image_dataset([s.path for s in train], None, 32, 32)])
    y = np.array([dataset.classes.index(s.label) for s in train])
    head = model.get_layer("head")
    head.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    head.fit(np.tile(x, (40, 1)), np.tile(y, 40), epochs=1, batch_size=8, verbose=0)   # one epoch: fast
    model.save(run / "model.keras")
    atomic_write(run / "labels.json", json.dumps(dataset.classes))
    atomic_write(run / "data_report.json", json.dumps({"classes": dataset.classes, "counts": {
        s: dataset.counts(s) for s in ("train", "val", "test")}, "skipped": [], "warnings": []}))
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("evalrun"))


@pytest.fixture(scope="module")
def predictor(run) -> Predictor:
    return Predictor.from_run(run)


def colour_model() -> keras.Model:
    """A studio-shaped model whose prediction is the dominant colour channel (classes red, green, blue)."""
    from tlcore.model import HeadConfig, build_model

    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False, name="rgb")   # features = pixels / 255
    backbone = keras.Model(inputs, conv(inputs), name="backbone")
    conv.set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3) / 255.0])
    model = build_model(backbone, None, 3, HeadConfig(enabled=False), 32)
    model.get_layer("head").get_layer("head_softmax").set_weights([np.eye(3, dtype="float32") * 20, np.zeros(3, "float32")])
    return model


# -- evaluate -----------------------------------------------------------------------------------------------
def test_evaluate_exact_metrics_on_a_known_model(tmp_path):
    classes = ["red", "green", "blue"]
    samples = []
    for label, rgb in [("red", (220, 30, 30))] * 3 + [("green", (30, 200, 40))] * 2 + [("blue", (30, 40, 220))] * 2:
        path = tmp_path / f"{len(samples)}.png"
        colour_image(rgb, seed=len(samples)).save(path)
        samples.append(Sample(str(path), label, "test", path.name))
    samples[-1].label = "green"   # a blue image labelled green: the one mistake
    dataset = Dataset(tmp_path, classes, samples, DataReport())

    result = evaluate_model(colour_model(), dataset, classes, 32, top_k=2)
    assert result["n"] == 7 and result["classes"] == classes and result["top_k"] == 2
    assert result["accuracy"] == pytest.approx(6 / 7)
    assert result["confusion_matrix"] == [[3, 0, 0], [0, 2, 1], [0, 0, 1]]
    rows = {r["class"]: r for r in result["per_class"]}
    assert rows["green"]["recall"] == pytest.approx(2 / 3) and rows["green"]["support"] == 3
    assert rows["blue"]["precision"] == pytest.approx(0.5) and rows["red"]["f1"] == 1.0
    assert result["macro_f1"] == pytest.approx(np.mean([1.0, 0.8, 2 / 3]))
    assert result["top_k_accuracy"] == 1.0   # green is the runner-up of a blue image (g=40 > r=30)
    assert "top_k" not in evaluate_model(colour_model(), dataset, classes, 32, top_k=3)   # k = classes: meaningless
    [miss] = result["misclassified"]
    assert (miss["name"], miss["true"], miss["predicted"]) == ("6.png", "green", "blue")
    assert miss["confidence"] == pytest.approx(max(miss["probabilities"].values())) and miss["confidence"] > 0.9


def test_evaluate_empty_split_and_unknown_classes(tmp_path):
    model, classes = colour_model(), ["red", "green", "blue"]
    path = tmp_path / "p.png"
    colour_image((200, 0, 200)).save(path)
    empty = Dataset(tmp_path, classes, [Sample(str(path), "red", "train", "p.png")], DataReport())
    result = evaluate_model(model, empty, classes, 32)
    assert result["n"] == 0 and "no test data" in result["note"] and result["misclassified"] == []
    purple = Dataset(tmp_path, ["purple", "red"], [Sample(str(path), "purple", "test", "p.png")], DataReport())
    with pytest.raises(DataError, match="'purple'"):
        evaluate_model(model, purple, classes, 32)


def test_evaluate_run_matches_sklearn_and_writes_json(run, predictor):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    result = evaluate_run(run)
    assert json.loads((run / "evaluation.json").read_text()) == result
    classes = load_labels(run)
    test = Dataset.load(run / "data").split("test")
    probs = predictor.probabilities([s.path for s in test])
    y_true = [classes.index(s.label) for s in test]
    y_pred = probs.argmax(1)
    assert result["n"] == len(test) == 6
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["accuracy"] >= 0.75   # trivially separable colours
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert result["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()
    # top-3 of 3 classes is always 100%: not measured; 6 test images: the uncertainty is spelled out
    assert "top_k" not in result and "top_k_accuracy" not in result
    low, high = result["accuracy_ci95"]
    assert low < result["accuracy"] <= high and (low, high) == pytest.approx(wilson_interval(
        round(result["accuracy"] * 6), 6))
    assert "Only 6 test images" in result["uncertainty_note"] and "test split" in result["uncertainty_note"]
    confidences = [m["confidence"] for m in result["misclassified"]]
    assert confidences == sorted(confidences, reverse=True)


def test_evaluate_run_on_other_data(run, tmp_path):
    other = write_colours(tmp_path / "other", per_class=3)
    result = evaluate_run(run, data=other)
    assert result["n"] == 9 and result["split"] == "all" and result["data"] == str(other)
    write_colours(tmp_path / "other", per_class=2, colours={"purple": (160, 30, 200)})
    with pytest.raises(DataError, match="'purple'"):
        evaluate_run(run, data=other)


# -- predict ------------------------------------------------------------------------------------------------
def test_predictor_top_k_names_and_sources(run, predictor):
    assert predictor.classes == ["blue", "green", "red"] and predictor.image_size == 32
    red = colour_image(COLOURS["red"], (50, 30), seed=7)
    buf = io.BytesIO()
    red.save(buf, "PNG")
    path = run.parent / "red.png"
    red.save(path)
    results = predictor.predict([path, str(path), buf.getvalue(), red, np.asarray(red)], top_k=5)
    assert len(results) == 5
    for top in results:
        assert len(top) == 3 and {c for c, _ in top} == set(predictor.classes)
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert [c for c, _ in top] == [c for c, _ in results[0]]
        assert [p for _, p in top] == pytest.approx([p for _, p in results[0]], abs=1e-6)
    assert results[0][0][0] == "red"
    [[(name, p)]] = predictor.predict(path, top_k=1)
    assert name == "red" and p == pytest.approx(results[0][0][1], abs=1e-6)


def test_prediction_equals_reloaded_keras_and_training_pipeline(run, predictor):
    paths = [s.path for s in Dataset.load(run / "data").samples]
    ours = predictor.probabilities(paths)
    reloaded = keras.saving.load_model(run / "model.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(ours, reloaded(predictor.prepare(paths)).numpy(), atol=1e-6)
    np.testing.assert_allclose(ours, predict_paths(reloaded, paths, 32), atol=1e-5)   # tf.io decode path


def test_bad_images_raise_or_become_rows(predictor, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"hello, this is not an image")
    with pytest.raises(ImageError, match="notes.jpg"):
        predictor.predict([bad])
    good = io.BytesIO()
    colour_image(COLOURS["green"]).save(good, "PNG")
    rows = predict_table(predictor, [("a.png", good.getvalue()), ("b.jpg", b"garbage"), ("c.png", good.getvalue())], 2)
    assert [r["file"] for r in rows] == ["a.png", "b.jpg", "c.png"]
    assert rows[0]["prediction"] == rows[2]["prediction"] == rows[0]["top1"] and rows[0]["error"] == ""
    assert rows[1]["prediction"] == "" and rows[1]["confidence"] is None and "b.jpg" in rows[1]["error"]
    assert set(rows[0]) == set(rows[1]) and "top2_probability" in rows[0]


def test_run_without_model_says_train_first(tmp_path):
    (tmp_path / "config.json").write_text(RunConfig().to_json())
    with pytest.raises(RunError, match="no trained model yet: train it first"):
        load_run_model(tmp_path)
    with pytest.raises(RunError, match="no run folder"):
        Predictor.from_run(tmp_path / "missing")


def test_wilson_interval_matches_known_values():
    """The Wilson score interval (95%): 8 of 10 → 0.490-0.943 (Newcombe 1998); never outside [0, 1]."""
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    low, high = wilson_interval(0, 10)
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    wide, narrow = wilson_interval(9, 10), wilson_interval(900, 1000)
    assert wide[1] - wide[0] > 5 * (narrow[1] - narrow[0])


def test_table_columns_are_words_and_downloads_carry_the_run(predictor):
    from tlcore.predict import download_name, table_columns

    names = table_columns(predictor, ["file", "prediction", "confidence", "top1", "top1_probability", "top2",
                                      "top2_probability", "error"])
    assert names["top1_probability"] == "1st guess probability" and names["top2"] == "2nd guess"
    assert not any("_" in name for name in names.values())
    assert download_name("Birds: fine tune / v2", "abcdef123456", "predictions.csv") == \
        "Birds-fine-tune-v2-123456-predictions.csv"
    assert download_name("", "abcdef123456", "predictions.csv") == "run-123456-predictions.csv"
    assert download_name("../../etc", "x1", "p.csv") == "etc-x1-p.csv"
    assert download_name("grüne Äpfel ..", "x1", "p.csv") == "grune-Apfel-x1-p.csv"     # accents kept as letters


def test_sample_images_come_from_the_test_split(run):
    from tlcore.predict import sample_images

    test = Dataset.load(run / "data").split("test")
    images = sample_images(run)
    assert images == [(s.path, s.label) for s in test] and all(Path(p).is_file() for p, _ in images)
