"""2-D maps of the backbone's pooled features (PCA or t-SNE), one point per image, coloured by class or domain."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .artifacts import load_labels, load_run_config
from .calls import over_files
from .errors import ConfigError
from .feature_store import FeatureStore, model_fingerprint, model_key, store_for_run
from .model import feature_model, hidden_model
from .predict import load_run_model, model_image_size
from .run_data import run_dataset
from .tf_env import keras

METHODS = ("pca", "tsne")
STAGES = ("before", "after")     # the frozen backbone's features, or the trained layer the classifier reads


def stage_model(model: keras.Model, stage: str = "before") -> keras.Model:
    """Raw pixels → features: "before" training (the pooled backbone output) or "after" (the trained hidden layer)."""
    if stage not in STAGES:
        raise ConfigError(f"Unknown feature stage '{stage}': choose before or after.")
    fm = feature_model(model) if stage == "before" else hidden_model(model)
    if fm is None:
        raise ConfigError("This model's head has no hidden layer, so there are no trained features to map: "
                          "choose the backbone features.")
    return fm


def features_of(model: keras.Model, paths: Sequence[str], image_size: int, batch_size: int = 32,
                stage: str = "before", store: FeatureStore | None = None) -> np.ndarray:
    """Features of image files: pooled backbone features (the head's input), or the trained hidden layer's.

    The backbone's features come from the shared feature store (``store``, default the workspace's) when it holds
    them, as training stored them; only the misses are computed."""
    fm = stage_model(model, stage)
    if stage != "before":
        return over_files(fm, paths, image_size, batch_size)
    store = store or FeatureStore()
    key = model_key(model_fingerprint(fm), image_size=image_size, boundary="pool")
    found = store.per_image(key, list(paths), lambda files: over_files(fm, files, image_size, batch_size),
                            shape=tuple(fm.output.shape[1:]))
    return found.array


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(n, d) → (n, 2) with PCA or t-SNE (perplexity adapted to n; too few points fall back to PCA)."""
    n = len(features)
    if n < 2:
        return np.zeros((n, 2), dtype="float32")
    x = features.reshape(n, -1).astype("float64")
    if method == "tsne" and n > 4:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        algorithm = "exact" if n <= 300 else "barnes_hut"   # exact is the faster one for small maps here
        out = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500,
                   method=algorithm).fit_transform(x)
    else:
        from sklearn.decomposition import PCA

        components = min(2, n, x.shape[1])
        out = PCA(components, random_state=seed).fit_transform(x)
        if components < 2:
            out = np.pad(out, ((0, 0), (0, 2 - components)))
    return np.nan_to_num(out).astype("float32")


def embedding_map(model: keras.Model, datasets: Any, classes: Sequence[str] | None, image_size: int, *,
                  method: str = "pca", max_points: int = 500, seed: int = 0, split: str | None = None,
                  batch_size: int = 32, stage: str = "before", store: FeatureStore | None = None) -> list[dict]:
    """Points {x, y, label, domain, name, split} for the images of one Dataset or of [(domain, Dataset), ...].

    Each domain gets an equal share of ``max_points`` (a seeded random subset when it has more images);
    ``split`` limits each dataset that has splits to that split; points are ordered by domain, then by ``classes``.
    """
    if method not in METHODS:
        raise ConfigError(f"Unknown embedding method '{method}': choose pca or tsne.")
    pairs = [("data", datasets)] if hasattr(datasets, "samples") else list(datasets)
    rng = np.random.default_rng(seed)
    share = max(1, int(max_points) // max(1, len(pairs)))
    order = {c: i for i, c in enumerate(classes or [])}
    chosen: list[tuple[str, Any]] = []
    for domain, dataset in pairs:
        has_splits = any(s.split for s in dataset.samples)   # unlabelled target images have no splits
        samples = dataset.split(split) if split and has_splits else list(dataset.samples)
        if len(samples) > share:
            samples = [samples[i] for i in sorted(rng.choice(len(samples), share, replace=False))]
        samples.sort(key=lambda s: order.get(s.label, len(order)))
        chosen += [(str(domain), s) for s in samples]
    if not chosen:
        return []
    xy = project(features_of(model, [s.path for _, s in chosen], image_size, batch_size, stage, store), method, seed)
    return [{"x": float(p[0]), "y": float(p[1]), "label": s.label, "domain": domain, "name": s.name, "split": s.split}
            for (domain, s), p in zip(chosen, xy)]


def run_embedding_map(run_dir: str | Path, *, method: str = "pca", split: str | None = None,
                      max_points: int = 500, seed: int = 0, stage: str = "before") -> list[dict]:
    """The map for a run: its data (domain "source"), plus its target images (domain "target") when it has them."""
    model = load_run_model(run_dir)
    config = load_run_config(run_dir)
    source = run_dataset(run_dir)
    target = run_dataset(run_dir, target=True) if config.target_data else None
    pairs = [("source", source)] + ([("target", target)] if target is not None else [])
    return embedding_map(model, pairs, load_labels(run_dir), model_image_size(model, config), method=method,
                         max_points=max_points, seed=seed, split=split, batch_size=config.batch_size, stage=stage,
                         store=store_for_run(run_dir))
