"""Copies in a dataset: exact duplicates by content hash, near-duplicates by two signals, and leaks between splits.

A near-duplicate (a resized, recompressed, slightly cropped or shifted copy) is found by two signals added up:
the cosine similarity of the backbone's pooled features (centred on the dataset's mean) and that of a small
perceptual signature of the pixels (the low frequencies of a 32×32 grey DCT, as pHash uses, but compared as
numbers rather than bits). Neither alone separates copies from look-alike photos of one class; together they do.
A pair is kept when each image is among the other's two nearest images and its score, corrected for how crowded
the neighbourhood is (CSLS: ``2·s − r_a − r_b``, ``r`` the mean similarity of an image's 10 nearest), is over a
threshold, and their mean similarity is at least :data:`SIMILARITY_FLOOR`. Signatures are kept in the feature
store like features (no TensorFlow here).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from . import feature_store

SIGNATURE_KEY = feature_store._digest({"signature": "dct32-grey-lowfreq-8x8", "version": 2})
NEAR_THRESHOLD = 0.5         # CSLS score of the summed similarities (benchmarks/bench_audit.py)
SIMILARITY_FLOOR = 0.5       # and at least this mean similarity: unrelated images are never near each other
_NEIGHBOURS = 10
_BLOCK = 1024


def _grey(path: str) -> np.ndarray | None:
    """The image as 32×32 grey pixels (JPEGs decoded at a reduced scale: fast); None when it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("L", (64, 64))
            return np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR), "float32")
    except (OSError, ValueError):            # unreadable now: a signature that matches nothing
        return None


def _signatures(paths: Sequence[str]) -> np.ndarray:
    from concurrent.futures import ThreadPoolExecutor

    from scipy.fft import dctn

    with ThreadPoolExecutor(2) as pool:            # PIL decodes outside the GIL
        greys = list(pool.map(_grey, paths))
    ok = np.array([g is not None for g in greys])
    stack = np.stack([g if g is not None else np.zeros((32, 32), "float32") for g in greys])
    coeffs = dctn(stack, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(paths), 64)[:, 1:]
    coeffs /= np.linalg.norm(coeffs, axis=1, keepdims=True) + 1e-9
    coeffs[~ok] = 0.0
    return coeffs.astype("float32")


def signatures(paths: Sequence[str], store: feature_store.FeatureStore | None = None) -> np.ndarray:
    """One 63-number perceptual signature per image (unit length), read from the store when it has them."""
    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, 63), "float32")
    if store is None or not store.enabled:
        return _signatures(paths)
    return np.asarray(store.per_image(SIGNATURE_KEY, paths, _signatures, shape=(63,)).array, "float32")


def hashes_of(paths: Sequence[str]) -> list[str]:
    """sha256 of each file's bytes (remembered by the feature store's cache); '' for a file that cannot be read."""
    out = []
    for p in paths:
        try:
            out.append(feature_store.file_hash(p))
        except OSError:
            out.append("")
    return out


def exact_groups(hashes: Sequence[str]) -> list[list[int]]:
    """Indices of byte-identical files, one group per content with two or more files."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h:
            by_hash[h].append(i)
    return sorted((g for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def near_pairs(features: np.ndarray, sigs: np.ndarray, *, threshold: float = NEAR_THRESHOLD,
               same: Sequence[str] | None = None,
               stop: Callable[[], None] | None = None) -> list[tuple[int, int, float, float]]:
    """Near-duplicate pairs ``(a, b, score, similarity)``, highest score first. ``similarity`` is the mean of the
    two cosine similarities (1 for identical pixels); ``same`` (content hashes) leaves exact copies out."""
    n = len(features)
    if n < 2:
        return []
    feats = _unit(features.astype("float32") - features.mean(0, dtype="float64").astype("float32"))
    sig = _unit(sigs.astype("float32"))
    k = min(_NEIGHBOURS, n - 1)
    top_idx = np.zeros((n, k), "int64")
    top_val = np.zeros((n, k), "float32")
    for start in range(0, n, _BLOCK):
        if stop is not None:
            stop()
        rows = slice(start, min(n, start + _BLOCK))
        sims = feats[rows] @ feats.T + sig[rows] @ sig.T
        sims[np.arange(sims.shape[0]), np.arange(start, rows.stop)] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sims, part, 1)
        order = np.argsort(-vals, 1)
        top_idx[rows], top_val[rows] = np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)
    crowd = top_val.mean(1)
    first = {(i, int(j)) for i in range(n) for j in top_idx[i, :2]}
    pairs = []
    for i, j in first:
        if i < j and (j, i) in first:
            s = float(feats[i] @ feats[j] + sig[i] @ sig[j])
            score = 2 * s - crowd[i] - crowd[j]
            if score >= threshold and s / 2 >= SIMILARITY_FLOOR and \
                    not (same is not None and same[i] and same[i] == same[j]):
                pairs.append((i, j, float(score), float(np.clip(s / 2, 0, 1))))
    return sorted(pairs, key=lambda p: -p[2])


def leak_pairs(groups: Sequence[Sequence[int]], splits: Sequence[str | None]) -> list[tuple[list[int], list[str]]]:
    """The groups (exact or near copies) whose images sit in more than one split, with the splits they span."""
    out = []
    for group in groups:
        spans = sorted({splits[i] or "train" for i in group})
        if len(spans) > 1:
            out.append((list(group), spans))
    return out
