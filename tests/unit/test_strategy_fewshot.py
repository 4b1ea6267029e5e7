"""Few-shot strategy: prototypes, the self-contained cosine classifier, add_class, N-way K-shot episodes, birds5."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from strategy_helpers import config, epochs, keras_classes, run, tiny_backbone, write_images
from tlcore.errors import DataError
from tlcore.predict import Predictor
from tlcore.runs import RunConfig, RunState
from tlcore.strategies.few_shot import add_class, episodes, load_prototypes

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "grey": (128, 128, 128)}


def _solid(path, rgb, size=36, seed=0):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def proto_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot")
    data = write_images(root / "colours", COLOURS, 10)
    return run(root / "ws", config(data, tiny_backbone(root / "bb.keras"), strategy="few_shot"))


def test_prototypes_classify_separated_classes_perfectly(proto_run):
    store, run_id, state, run_dir = proto_run
    assert state == RunState.DONE, store.get(run_id).error
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["accuracy"] == 1.0 and evaluation["n"] >= 10
    shots = evaluation["few_shot"]
    assert shots["5-way 1-shot"]["accuracy"] == 1.0 and shots["5-way 1-shot"]["ci95"] == 0.0
    assert shots["5-way 5-shot"]["accuracy"] == 1.0
    proto = load_prototypes(run_dir)
    assert proto["classes"] == sorted(COLOURS) and proto["means"].shape[0] == 5 and proto["counts"].min() >= 5
    history = epochs(store, run_id)
    assert history and history[-1]["accuracy"] == 1.0 and history[-1]["val_accuracy"] == 1.0


def test_exported_model_is_a_self_contained_cosine_classifier(proto_run, tmp_path):
    store, run_id, state, run_dir = proto_run
    names = keras_classes(run_dir / "model.keras")
    assert "UnitNormalization" in names and not any("tlcore" in n for n in names)
    assert (run_dir / "embedding.keras").is_file()
    predictor = Predictor.from_run(run_dir)
    probs = predictor.probabilities([_solid(tmp_path / "b.png", COLOURS["blue"], seed=5)])
    assert predictor.classes[int(probs.argmax())] == "blue" and abs(probs.sum() - 1) < 1e-5
    # The Dense kernel is the normalised prototype matrix: its columns are unit vectors.
    kernel = predictor.model.get_layer("prototypes").get_weights()[0]
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-5)


def test_add_class_from_one_image_without_retraining(proto_run, tmp_path):
    store, run_id, state, run_dir = proto_run
    cyan = (30, 220, 220)
    classes = add_class(run_dir, "cyan", [_solid(tmp_path / "c0.png", cyan)])
    assert classes == sorted(COLOURS) + ["cyan"]
    assert json.loads((run_dir / "labels.json").read_text()) == classes
    predictor = Predictor.from_run(run_dir)
    tests = {name: _solid(tmp_path / f"t_{name}.png", rgb, seed=9) for name, rgb in {**COLOURS, "cyan": cyan}.items()}
    predicted = [top[0][0] for top in predictor.predict(list(tests.values()), top_k=1)]
    assert predicted == list(tests)
    # Adding more images to an existing class updates its prototype (running mean) instead of a new class.
    again = add_class(run_dir, "cyan", [_solid(tmp_path / "c1.png", cyan, seed=3), _solid(tmp_path / "c2.png", cyan, seed=4)])
    assert again == classes and load_prototypes(run_dir)["counts"][-1] == 3


def test_episodes_measure_n_way_k_shot():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16)) * 10
    labels = np.repeat(np.arange(6), 8)
    separated = centres[labels] + rng.normal(size=(48, 16)) * 0.1
    assert episodes(separated, labels, 5, 1, 5, 50, seed=0) == (1.0, 0.0)
    noise = rng.normal(size=(48, 16))
    mean, ci = episodes(noise, labels, 5, 1, 5, 300, seed=0)
    assert 0.1 < mean < 0.3 and 0 < ci < 0.05            # chance is 1/5
    assert episodes(noise, labels, 5, 1, 5, 20, seed=1) == episodes(noise, labels, 5, 1, 5, 20, seed=1)
    with pytest.raises(DataError, match="5-way 8-shot"):
        episodes(noise, labels, 5, 8, 5, 10)


def test_learned_projection_trains_episodically(tmp_path):
    data = write_images(tmp_path / "colours", COLOURS, 8)
    cfg = config(data, tiny_backbone(tmp_path / "bb.keras"), strategy="few_shot", epochs=3, learning_rate=1e-2,
                 options={"projection": True, "projection_units": 16, "episodes_per_epoch": 10, "eval_episodes": 50})
    store, run_id, state, run_dir = run(tmp_path / "ws", cfg)
    assert state == RunState.DONE, store.get(run_id).error
    history = epochs(store, run_id, "episodes")
    assert len(history) == 3 and history[-1]["accuracy"] >= 0.9
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["accuracy"] >= 0.9
    assert all(r["pool"].startswith("held-out") for r in evaluation["few_shot"]["results"])
    assert "projection" in {layer.name for layer in Predictor.from_run(run_dir).model.layers}


def test_birds5_five_way_one_and_five_shot(birds5, imagenet_mobilenet, tmp_path):
    """Real photos with ImageNet MobileNet α=0.25 embeddings: 5-way 1-shot and 5-shot on held-out images."""
    cfg = RunConfig(data=str(birds5), strategy="few_shot", backbone="mobilenet_025", weights="imagenet",
                    image_size=224, batch_size=32, options={"eval_episodes": 600, "n_query": 5})
    store, run_id, state, run_dir = run(tmp_path / "ws", cfg)
    assert state == RunState.DONE, store.get(run_id).error
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    one, five = evaluation["few_shot"]["5-way 1-shot"], evaluation["few_shot"]["5-way 5-shot"]
    print(f"birds5 prototypes: test accuracy {evaluation['accuracy']:.3f}; 5-way 1-shot {one['accuracy']:.3f} ± "
          f"{one['ci95']:.3f}; 5-way 5-shot {five['accuracy']:.3f} ± {five['ci95']:.3f} ({five['pool']})")
    assert one["pool"].startswith("held-out") and five["pool"].startswith("held-out")
    assert one["accuracy"] >= 0.55
    assert five["accuracy"] >= max(0.8, one["accuracy"])
    assert evaluation["accuracy"] >= 0.85


# -- issue 9: a true chart, episode columns in words, "Evaluate again" keeps the episodes ----------------------
def test_prototype_run_chart_shows_accuracy_not_a_one_point_loss(proto_run):
    from tlcore.progress import summarize
    from views._charts import training_curves

    store, run_id = proto_run[:2]
    rows = summarize(store.read_events(run_id)).epochs
    figure = training_curves(rows, None, 1)
    assert [bar.type for bar in figure.data] == ["bar"]
    assert list(figure.data[0].y) == ["training images", "validation images"] and list(figure.data[0].x) == [1.0, 1.0]
    assert "loss" not in figure.layout.title.text.lower() and "prototype" in figure.layout.title.text


def test_evaluate_again_keeps_the_episodes_and_scores_an_added_class(proto_run, tmp_path):
    from tlcore.evaluate import evaluate_run

    run_dir = proto_run[3]
    trained = json.loads((run_dir / "evaluation.json").read_text())
    add_class(run_dir, "pink", [_solid(tmp_path / "p.png", (250, 150, 200))])
    again = evaluate_run(run_dir)
    assert again["few_shot"] == trained["few_shot"] and "pink" in again["classes"]
    assert again["accuracy"] == 1.0 and "top_k_accuracy" in again   # 3 < 6 or 7 classes: top-3 means something


def test_episode_columns_are_named_in_words(proto_run):
    from views._eval_extras import EPISODE_WORDS

    results = json.loads((proto_run[3] / "evaluation.json").read_text())["few_shot"]["results"]
    assert set(results[0]) <= set(EPISODE_WORDS)
    assert not any("_" in words for words in EPISODE_WORDS.values())
