"""Check my data: likely label errors, copies, leaks between splits, outliers and clashing class names.

Everything is computed from one pass of the frozen backbone through the shared feature store
(:mod:`tlcore.audit_features`), so a dataset a run already trained on is checked in seconds:

- **label issues**: out-of-fold probabilities (stratified k-fold logistic regression on the cached features) fed
  to cleanlab's ``find_label_issues``; each suspect has its given label, the suggested one and a score (0–1,
  higher is more suspect: one minus cleanlab's self-confidence label quality);
- **duplicates** by content hash and **near-duplicates** by features plus a perceptual signature
  (:mod:`tlcore.audit_similar`); **leaks** are those copies that sit in different splits;
- **outliers**: images far from the centre of their own class (a robust z-score of the cosine distance);
- **class balance** and **class names** that differ only by case or by spaces.

Paths in the result are the files' names as given in the source folder, zip or CSV (``Sample.name``).
"""
from __future__ import annotations

import re
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import audit_similar
from .backbones import resolve_size
from .errors import DataError

KINDS = ("label_issues", "duplicates", "near_duplicates", "leaks", "outliers", "class_names")


@dataclass
class AuditOptions:
    """The check's settings; the defaults are the ones the benchmark measured."""

    folds: int = 5
    seed: int = 0
    near_threshold: float = audit_similar.NEAR_THRESHOLD
    outlier_z: float = 3.5
    backbone: str = "mobilenet_025"
    weights: str = "imagenet"
    image_size: int | None = None


def _progress_stage(progress: Callable[..., None] | None, stage: str, done: int = 0, total: int = 0) -> None:
    if progress is not None:
        progress(stage=stage, done=done, total=total)


def audit_dataset(dataset: Any, *, options: AuditOptions | None = None, store: Any = None,
                  progress: Callable[..., None] | None = None, stop: Callable[[], None] | None = None,
                  features: np.ndarray | None = None) -> dict:
    """The check of a :class:`tlcore.data.Dataset`, as one JSON-ready dict (the keys of :data:`KINDS` plus
    ``class_balance``, ``counts`` and ``about``). ``progress(stage=, done=, total=)`` hears each stage and each
    batch of the backbone pass; ``stop()`` may raise to end early; ``features`` skips the backbone (tests)."""
    opts = options or AuditOptions()
    samples = [s for s in dataset.samples]
    if not samples:
        raise DataError("This dataset has no images to check; import some images first.")
    start = time.perf_counter()
    paths = [s.path for s in samples]
    reused = len(samples)
    thumbs: dict[str, np.ndarray] = {}         # thumbnails of the images the backbone pass decodes
    size = resolve_size(opts.backbone, opts.image_size)
    if features is None:
        from .audit_features import pooled_features

        _progress_stage(progress, "features", 0, len(paths))
        features, reused = pooled_features(paths, backbone=opts.backbone, weights=opts.weights, image_size=size,
                                           store=store, stop=stop, thumbs=lambda files, t: thumbs.update(zip(files, t)),
                                           progress=lambda d, t: _progress_stage(progress, "features", d, t))
    _progress_stage(progress, "copies")
    hashes = audit_similar.hashes_of(paths)
    sigs = signatures(paths, store, size, thumbs)
    result = analyse(dataset, np.asarray(features, "float32"), sigs, hashes, opts, stop=stop)
    result["about"] = {"images": len(samples), "classes": len(dataset.classes), "backbone": opts.backbone,
                       "weights": opts.weights, "features_reused": int(reused),
                       "seconds": round(time.perf_counter() - start, 2), "checked": time.time()}
    _progress_stage(progress, "done", 1, 1)
    return result


def signatures(paths: list[str], store: Any, image_size: int, thumbs: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The images' perceptual signatures (:mod:`tlcore.audit_similar`), from the store, from ``thumbs`` (thumbnails
    a backbone pass already made), or else from a decode of the images at ``image_size``."""
    thumbs = thumbs or {}

    def thumbs_of(files: list[str]) -> np.ndarray:
        missing = [f for f in files if f not in thumbs]
        if missing:
            from .audit_features import thumbnails

            thumbs.update(zip(missing, thumbnails(missing, image_size)))
        return np.stack([thumbs[f] for f in files])

    return audit_similar.signatures(paths, thumbs_of, store, image_size=image_size)


def analyse(dataset: Any, features: np.ndarray, sigs: np.ndarray, hashes: list[str],
            opts: AuditOptions | None = None, stop: Callable[[], None] | None = None) -> dict:
    """Every check on features already computed (one row per ``dataset.samples`` entry)."""
    opts = opts or AuditOptions()
    samples = list(dataset.samples)
    names = [s.name for s in samples]
    splits = [s.split or "train" for s in samples]
    labelled = [i for i, s in enumerate(samples) if s.label is not None]
    exact = audit_similar.exact_groups(hashes)
    near = audit_similar.near_pairs(features, sigs, threshold=opts.near_threshold, same=hashes, stop=stop)
    leaks = audit_similar.leak_pairs(exact + [[a, b] for a, b, _, _ in near], splits)
    issues = label_issues([samples[i].label for i in labelled], features[labelled], folds=opts.folds,
                          seed=opts.seed)
    return {
        "label_issues": [{"path": names[labelled[i]], "given": given, "suggested": suggested,
                          "score": round(score, 4)} for i, given, suggested, score in issues],
        "duplicates": [{"paths": [names[i] for i in g], "similarity": 1.0} for g in exact],
        "near_duplicates": [{"paths": [names[a], names[b]], "similarity": round(sim, 4), "score": round(score, 4)}
                            for a, b, score, sim in near],
        "leaks": [{"paths": [names[i] for i in g], "splits": spans,
                   "kind": "exact" if len(g) > 2 or hashes[g[0]] == hashes[g[1]] else "near"} for g, spans in leaks],
        "outliers": [{"path": names[labelled[i]], "label": samples[labelled[i]].label, "score": round(z, 3)}
                     for i, z in outliers([samples[i].label for i in labelled], features[labelled],
                                          opts.outlier_z)],
        "class_names": class_name_clashes(list(dataset.classes)),
        "class_balance": class_balance(dataset),
    }


def out_of_fold(labels: np.ndarray, features: np.ndarray, n_classes: int, *, folds: int = 5,
                seed: int = 0, ridge: float = 1.0, temperature: float = 10.0) -> np.ndarray:
    """Out-of-fold class probabilities: each image scored by a linear classifier that never saw it.

    The classifier is ridge regression on one-hot targets over the centred, unit-length features (a closed-form
    solve, milliseconds for thousands of images), its scores turned into probabilities by a softmax."""
    from sklearn.model_selection import StratifiedKFold

    x = features - features.mean(0)
    x = (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)).astype("float64")
    probs = np.full((len(labels), n_classes), 1.0 / n_classes)
    largest = int(np.bincount(labels, minlength=n_classes).max())
    k = max(2, min(folds, largest))
    targets = np.eye(n_classes)[labels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a class with fewer images than folds: scored where it can be
        for train, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, labels):
            a = x[train]
            weights = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ targets[train])
            scores = temperature * (x[held] @ weights)
            scores -= scores.max(1, keepdims=True)
            e = np.exp(scores)
            probs[held] = e / e.sum(1, keepdims=True)
    return probs


def label_issues(labels: list[str], features: np.ndarray, *, folds: int = 5,
                 seed: int = 0) -> list[tuple[int, str, str, float]]:
    """Likely wrong labels, most suspect first: ``(index, given, suggested, score)``. Classes with one image
    cannot be checked (nothing else shows what they look like) and are left out of the check."""
    tally = Counter(labels)
    keep = [i for i, label in enumerate(labels) if tally[label] >= 2]
    classes = sorted({labels[i] for i in keep})
    if len(classes) < 2 or len(keep) < 4:
        return []
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[labels[i]] for i in keep])
    probs = out_of_fold(y, features[keep], len(classes), folds=folds, seed=seed)
    quality = get_label_quality_scores(y, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(y, probs, n_jobs=1)
    suggested = probs.argmax(1)
    order = sorted(np.flatnonzero(flagged), key=lambda i: quality[i])
    return [(keep[i], classes[y[i]], classes[suggested[i]], float(1 - quality[i])) for i in order
            if suggested[i] != y[i]]


def suspicion(labels: list[str], features: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Every image's label suspicion (one minus cleanlab's label quality; 0 for unchecked ones), for ranking."""
    tally = Counter(labels)
    keep = [i for i, label in enumerate(labels) if tally[label] >= 2]
    classes = sorted({labels[i] for i in keep})
    out = np.zeros(len(labels))
    if len(classes) < 2:
        return out
    from cleanlab.rank import get_label_quality_scores

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[labels[i]] for i in keep])
    out[keep] = 1 - get_label_quality_scores(y, out_of_fold(y, features[keep], len(classes), folds=folds, seed=seed))
    return out


def outliers(labels: list[str], features: np.ndarray, z_limit: float = 3.5) -> list[tuple[int, float]]:
    """Images unlike the rest of their class, most unusual first: ``(index, robust z)`` of the cosine distance
    to the class's centre, for classes of at least 5 images."""
    x = features - features.mean(0)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    found = []
    for members in by_class.values():
        if len(members) < 5:
            continue
        centre = x[members].mean(0)
        centre /= np.linalg.norm(centre) + 1e-12
        dist = 1 - x[members] @ centre
        median = np.median(dist)
        spread = 1.4826 * np.median(np.abs(dist - median)) + 1e-9
        for i, d in zip(members, dist):
            z = (d - median) / spread
            if z >= z_limit:
                found.append((i, float(z)))
    return sorted(found, key=lambda f: -f[1])


def _key(name: str) -> str:
    return re.sub(r"\s+", "", name).casefold()


def class_name_clashes(classes: list[str]) -> list[dict]:
    """Classes whose names differ only by case or by spaces ("Red Circle" / "red circle", "cat " / "cat")."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in classes:
        groups[_key(name)].append(name)
    out = []
    for names in groups.values():
        if len(names) < 2:
            continue
        reason = ("they differ only by spaces" if len({" ".join(n.split()) for n in names}) == 1 else
                  "they differ only by case" if len({n.casefold() for n in names}) == 1 else
                  "they differ only by case and spaces")
        out.append({"names": sorted(names), "reason": reason})
    return out


def class_balance(dataset: Any) -> dict:
    """Images per class, the largest ÷ smallest class, and whether that is more than 3 (the import's warning)."""
    counts = {c: n for c, n in dataset.counts().items()}
    sizes = [n for n in counts.values() if n > 0]
    ratio = (max(sizes) / min(sizes)) if sizes else 1.0
    return {"counts": counts, "ratio": round(ratio, 2), "imbalanced": ratio > 3}


def summary_line(result: dict) -> str:
    """One line that counts what the check found, for the command line and the page."""
    parts = [f"{len(result['label_issues'])} likely label errors", f"{len(result['duplicates'])} duplicate groups",
             f"{len(result['near_duplicates'])} near-duplicate pairs", f"{len(result['leaks'])} leaks between splits",
             f"{len(result['outliers'])} outliers", f"{len(result['class_names'])} clashing class names"]
    return ", ".join(parts)


def audit_text(result: dict, limit: int = 10) -> str:
    """The check as text for a terminal: the counts, then the first ``limit`` findings of each kind."""
    lines = [summary_line(result) + "."]
    for item in result["label_issues"][:limit]:
        lines.append(f"label?     {item['path']}: labelled '{item['given']}', looks like '{item['suggested']}' "
                     f"(score {item['score']:.2f})")
    for item in result["duplicates"][:limit]:
        lines.append(f"duplicate  {' = '.join(item['paths'])}")
    for item in result["near_duplicates"][:limit]:
        lines.append(f"near copy  {' ~ '.join(item['paths'])} (similarity {item['similarity']:.2f})")
    for item in result["leaks"][:limit]:
        lines.append(f"leak       {' / '.join(item['paths'])} (in {' and '.join(item['splits'])})")
    for item in result["outliers"][:limit]:
        lines.append(f"outlier    {item['path']} (class '{item['label']}', score {item['score']:.1f})")
    for item in result["class_names"]:
        lines.append(f"names      {' / '.join(repr(n) for n in item['names'])}: {item['reason']}")
    return "\n".join(lines)
