"""Copies in a dataset: exact duplicates by content hash, near-duplicates by two signals, and leaks between splits.

A near-duplicate (a resized, recompressed, slightly cropped or shifted copy) is found by two signals added up:
the cosine similarity of the backbone's pooled features (centred on the dataset's mean) and that of a small
perceptual signature of the pixels (the low frequencies of a 32×32 grey DCT, as pHash uses, but compared as
numbers rather than bits), and a pair must keep its mean colour. Neither alone separates copies from look-alike photos of one class; together they do.
A pair is kept when each image is among the other's two nearest images and its score, corrected for how crowded
the neighbourhood is (CSLS: ``2·s − r_a − r_b``, ``r`` the mean similarity of an image's 10 nearest), is over a
threshold, and their mean similarity is at least :data:`SIMILARITY_FLOOR`. The signatures' thumbnails come from
the pixels the backbone pass decodes (no second decode); signatures are kept in the feature store like features
(no TensorFlow here).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from . import feature_store
from .vectors import unit

SIGNATURE = "dct32-grey-area-of-training-decode-lowfreq-8x8-and-mean-colour-v4"
THUMB = 32                   # the thumbnails' side
DCT = 63                     # a signature: 63 low frequencies of the grey thumbnail, then its mean R, G, B (0–1)
COLOUR_GAP = 0.075           # a near copy's mean colour differs by at most this (of 0–1) in any channel
_GREY = np.array([0.2989, 0.5870, 0.1140], "float32")     # as tf.image.rgb_to_grayscale
NEAR_THRESHOLD = 0.5         # CSLS score of the summed similarities (benchmarks/bench_audit.py)
SIMILARITY_FLOOR = 0.5       # and at least this mean similarity: unrelated images are never near each other
_NEIGHBOURS = 10
_BLOCK = 1024


def signature_rows(thumbs: np.ndarray) -> np.ndarray:
    """Signatures of 32×32 colour thumbnails ``(N, 32, 32, 3)`` (0–255): the 8×8 lowest frequencies of their grey
    DCT without the mean, unit length (an all-flat thumbnail gives zeros, which match nothing), then their mean
    colour (three numbers, 0–1). Resizing, recompressing, a small crop or shift keep both; another photo of a
    look-alike scene on another background keeps the first, not the second."""
    from scipy.fft import dctn

    thumbs = np.asarray(thumbs, "float32").reshape(-1, THUMB, THUMB, 3)
    coeffs = dctn(thumbs @ _GREY, axes=(1, 2), norm="ortho")[:, :8, :8].reshape(len(thumbs), 64)[:, 1:]
    coeffs /= np.linalg.norm(coeffs, axis=1, keepdims=True) + 1e-9
    return np.concatenate([coeffs, thumbs.mean(axis=(1, 2)) / 255.0], axis=1).astype("float32")


def signatures(paths: Sequence[str], thumbs_of: Callable[[list[str]], np.ndarray],
               store: feature_store.FeatureStore | None = None, *, image_size: int = 224) -> np.ndarray:
    """One signature per image, read from the store when it has them; ``thumbs_of(files)`` gives the 32×32 colour
    thumbnails of the others (:func:`tlcore.audit_features.thumbnails`: the pixels the backbone sees at
    ``image_size``, which is part of the key)."""
    paths = [str(p) for p in paths]
    if not paths:
        return np.zeros((0, DCT + 3), "float32")
    compute = lambda files: signature_rows(thumbs_of(files))  # noqa: E731
    if store is None or not store.enabled:
        return compute(paths)
    return np.asarray(store.per_image(signature_key(image_size), paths, compute, shape=(DCT + 3,)).array, "float32")


def signature_key(image_size: int) -> str:
    """The feature store's key of the signatures made from the training decode at ``image_size``."""
    return feature_store._digest({"signature": SIGNATURE, "image_size": int(image_size)})


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


def near_pairs(features: np.ndarray, sigs: np.ndarray, *, threshold: float = NEAR_THRESHOLD,
               same: Sequence[str] | None = None,
               stop: Callable[[], None] | None = None) -> list[tuple[int, int, float, float]]:
    """Near-duplicate pairs ``(a, b, score, similarity)``, highest score first. ``similarity`` is the mean of the
    two cosine similarities (1 for identical pixels); ``same`` (content hashes) leaves exact copies out. Signatures
    with their mean colour (:func:`signature_rows`) also keep out pairs whose colours differ by over
    :data:`COLOUR_GAP`."""
    n = len(features)
    if n < 2:
        return []
    feats = unit(features.astype("float32") - features.mean(0, dtype="float64").astype("float32"))
    colours = sigs[:, DCT:DCT + 3] if sigs.shape[1] >= DCT + 3 else None
    sig = unit(sigs[:, :DCT].astype("float32"))
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
                    not (same is not None and same[i] and same[i] == same[j]) and \
                    (colours is None or np.abs(colours[i] - colours[j]).max() <= COLOUR_GAP):
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
