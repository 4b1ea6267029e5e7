"""tlcore.explain (Grad-CAM, overlay) and tlcore.embed (PCA / t-SNE maps with domains)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_evaluate_predict import COLOURS, colour_model, make_tiny_run  # noqa: E402

from tlcore.data import Dataset  # noqa: E402
from tlcore.embed import embedding_map, project, run_embedding_map  # noqa: E402
from tlcore.errors import ConfigError  # noqa: E402
from tlcore.explain import colormap, gradcam, overlay  # noqa: E402
from tlcore.predict import load_run_model  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("explainrun"))


def test_gradcam_shape_and_range_on_a_run_model(run):
    model = load_run_model(run)
    image = np.random.default_rng(0).integers(0, 255, (50, 40, 3), dtype=np.uint8)
    for class_index in (None, 2):
        heat = gradcam(model, image, class_index)
        assert heat.shape == (50, 40) and heat.dtype == np.float32
        assert 0.0 <= heat.min() and heat.max() <= 1.0
    with pytest.raises(ConfigError, match="height × width × 3"):
        gradcam(model, image[..., 0])


def test_gradcam_points_at_the_evidence():
    """Left half red, right half blue: the 'red' map is hot on the left, the 'blue' map on the right."""
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[:, :16] = COLOURS["red"]
    image[:, 16:] = COLOURS["blue"]
    model = colour_model()   # classes red, green, blue
    red, blue = gradcam(model, image, 0), gradcam(model, image, 2)
    assert red[:, :12].mean() > 0.9 and red[:, 20:].max() < 0.1
    assert blue[:, 20:].mean() > 0.9 and blue[:, :12].max() < 0.1


def test_overlay_and_colormap():
    image = np.full((10, 12, 3), 128, dtype=np.uint8)
    heat = np.zeros((5, 6), dtype="float32")
    heat[:, 3:] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert out[0, 0, 2] > out[0, 0, 0]      # cold → blue
    assert out[0, -1, 0] > out[0, -1, 2]    # hot → red
    np.testing.assert_allclose(colormap(np.array([0.0, 0.5, 1.0])), [[0, 0, 0.5], [0.5, 1, 0.5], [0.5, 0, 0]])


def test_embedding_map_one_point_per_image_with_domains(run):
    model = load_run_model(run)
    dataset = Dataset.load(run / "data")
    classes = dataset.classes
    points = embedding_map(model, [("source", dataset), ("target", dataset)], classes, 32, max_points=500)
    n = len(dataset.samples)
    assert len(points) == 2 * n
    assert [p["domain"] for p in points] == ["source"] * n + ["target"] * n
    assert {p["name"] for p in points} == {s.name for s in dataset.samples}
    assert {p["label"] for p in points} == set(classes)
    assert all(isinstance(p["x"], float) and np.isfinite([p["x"], p["y"]]).all() for p in points)
    labels = [p["label"] for p in points[:n]]
    assert labels == sorted(labels, key=classes.index)   # ordered by the model's classes

    tsne = embedding_map(model, dataset, classes, 32, method="tsne", max_points=10, split="train")
    assert len(tsne) == 10 and {p["domain"] for p in tsne} == {"data"} and {p["split"] for p in tsne} == {"train"}
    with pytest.raises(ConfigError, match="pca or tsne"):
        embedding_map(model, dataset, classes, 32, method="umap")


def test_run_embedding_map_and_small_projections(run):
    points = run_embedding_map(run, split="test")
    assert len(points) == 6 and {p["domain"] for p in points} == {"source"}
    assert project(np.zeros((0, 4))).shape == (0, 2)
    assert project(np.ones((1, 4)), "tsne").tolist() == [[0.0, 0.0]]
    assert project(np.eye(3), "tsne").shape == (3, 2)   # too few points for t-SNE: PCA instead


def test_features_before_and_after_training(run):
    from tlcore.embed import features_of, stage_model
    from tlcore.model import HeadConfig, build_model

    model = load_run_model(run)
    paths = [s.path for s in Dataset.load(run / "data").samples[:5]]
    before, after = (features_of(model, paths, 32, stage=stage) for stage in ("before", "after"))
    assert before.shape == (5, 256) and after.shape == (5, 16)          # pooled backbone vs the head's Dense(16)
    dense = model.get_layer("head").get_layer("head_dense")
    np.testing.assert_allclose(after, np.maximum(before @ dense.kernel.numpy() + dense.bias.numpy(), 0), atol=1e-4)
    points = run_embedding_map(run, split="test", stage="after")
    assert len(points) == 6
    bare = build_model(model.get_layer("backbone"), None, 3, HeadConfig(enabled=False), 32)
    with pytest.raises(ConfigError, match="no hidden layer"):
        stage_model(bare, "after")
    with pytest.raises(ConfigError, match="before or after"):
        stage_model(model, "during")
