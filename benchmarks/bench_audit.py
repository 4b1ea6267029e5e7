"""Data-check benchmark (issue 12): does the check find planted problems, and what does it cost?

Measured in one run, MobileNet α=0.25 at 224 px (the default backbone), on data made from ../shared:
  (1) labels of 5% of birds5 train flipped at random (seeded): share of the flips among the top 2× as many suspects
      (target ≥ 80%), three seeds;
  (2) the same on office_caltech amazon, 10 classes (target ≥ 70%);
  (3) 60 planted near-duplicates of birds5 train images (resized to 60–90%, JPEG quality 40–70, cropped by up to
      10%, shifted by up to 8 px): share found (target ≥ 95%) and share of false pairs (target ≤ 5%); birds5 already
      holds near-copies of its own, so pairs the check finds on the data before planting count as neither;
  (4) the check's time on birds5 train (1,197 images) ÷ one forward pass over them: with the features stored
      (target ≤ 0.3) and cold (target ≤ 1.3).

    KERAS_HOME=<copy of ../shared/keras_home> .venv/bin/python benchmarks/bench_audit.py [--json out.json]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, setup  # noqa: E402

WORK = setup()

import numpy as np  # noqa: E402

from tlcore import audit, audit_features, audit_similar, feature_store  # noqa: E402
from tlcore.calls import over_files  # noqa: E402
from tlcore.data import Dataset, Sample, load_data  # noqa: E402

BIRDS = SHARED / "datasets" / "birds5" / "train"
AMAZON = SHARED / "datasets" / "office_caltech" / "amazon"


def _import(folder: Path) -> Dataset:
    return load_data(folder, Path(tempfile.mkdtemp(dir=WORK)), val_split=0.0, test_split=0.0)


def timing(ds: Dataset, rounds: int = 3) -> dict:
    """One forward pass (traced) vs the check: cold (nothing stored; the model in memory, or built and traced in
    the call) and warm (every feature stored; the model in memory, or not). The machine is shared, so each round
    times a forward pass right before the checks it is compared with; the figure is the median of the rounds."""
    paths = [s.path for s in ds.samples]
    trunk, _, size = audit_features.feature_trunk()
    over_files(trunk, paths[:64], size, 32)                          # traced before anything is timed
    audit_features.warm()                                            # as the server's warm-up does

    def check(store_dir: str, rebuild: bool) -> tuple[float, int]:
        if rebuild:
            audit_features._TRUNKS.clear()
        start = time.perf_counter()
        result = audit.audit_dataset(ds, store=feature_store.FeatureStore(WORK / store_dir, limit_bytes=4 << 30))
        return time.perf_counter() - start, result["about"]["features_reused"]

    rows = []
    for i in range(rounds):
        trunk = audit_features.feature_trunk()[0]
        audit_features.warm()
        over_files(trunk, paths[:32], size, 32)
        start = time.perf_counter()
        over_files(trunk, paths, size, 32)
        forward = time.perf_counter() - start
        cold, reused = check(f"cold-{i}", rebuild=False)            # the model the forward pass used
        assert reused == 0
        built, reused = check(f"built-{i}", rebuild=True)          # a model built, fingerprinted and traced
        assert reused == 0
        warm, reused = check(f"built-{i}", rebuild=False)
        assert reused == len(paths)
        no_model, _ = check(f"built-{i}", rebuild=True)            # the key from pool-keys.json: no model built
        rows.append({"forward_s": forward, "cold_s": cold, "cold_model_built_s": built, "warm_s": warm,
                     "warm_no_model_s": no_model})
    out = {"images": len(paths), "rounds": rows}
    for name in ("forward", "cold", "cold_model_built", "warm", "warm_no_model"):
        out[f"{name}_s"] = float(np.median([r[f"{name}_s"] for r in rows]))
        if name != "forward":
            out[f"{name}_ratio"] = float(np.median([r[f"{name}_s"] / r["forward_s"] for r in rows]))
    return out


def flips(ds: Dataset, store, seeds=(0, 1, 2)) -> dict:
    """Flip 5% of the labels; the share of flips among the top 2× as many suspects, and cleanlab's own list."""
    feats, _ = audit_features.pooled_features([s.path for s in ds.samples], store=store)
    shares, precision, recall = [], [], []
    for seed in seeds:
        rng = random.Random(seed)
        labels = [s.label for s in ds.samples]
        k = round(0.05 * len(labels))
        flipped = rng.sample(range(len(labels)), k)
        for i in flipped:
            labels[i] = rng.choice([c for c in ds.classes if c != labels[i]])
        top = np.argsort(-audit.suspicion(labels, feats))[:2 * k]
        shares.append(len(set(top.tolist()) & set(flipped)) / k)
        found = {i for i, *_ in audit.label_issues(labels, feats)}
        precision.append(len(found & set(flipped)) / max(1, len(found)))
        recall.append(len(found & set(flipped)) / k)
    return {"images": len(ds.samples), "classes": len(ds.classes), "flips": k, "share_top2x": shares,
            "issues_precision": precision, "issues_recall": recall}


def _variant(path: str, rng: random.Random) -> bytes:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    cut = rng.uniform(0, 0.10)
    cw, ch = int(w * (1 - cut)), int(h * (1 - cut))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    dx, dy = rng.randint(-8, 8), rng.randint(-8, 8)
    img = img.transform(img.size, Image.AFFINE, (1, 0, dx, 0, 1, dy))
    scale = rng.uniform(0.6, 0.9)
    img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))), Image.BILINEAR)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=rng.randint(40, 70))
    return out.getvalue()


def _pairs(ds: Dataset, store) -> set[tuple[str, str]]:
    paths = [s.path for s in ds.samples]
    feats, _ = audit_features.pooled_features(paths, store=store)
    hashes = audit_similar.hashes_of(paths)
    names = [s.name for s in ds.samples]
    near = audit_similar.near_pairs(feats, audit.signatures(paths, store, 224), same=hashes)
    exact = [(g[0], j) for g in audit_similar.exact_groups(hashes) for j in g[1:]]
    return {tuple(sorted((names[a], names[b]))) for a, b, *_ in near} | \
        {tuple(sorted((names[a], names[b]))) for a, b in exact}


def near_duplicates(ds: Dataset, store, n: int = 60, seed: int = 0) -> dict:
    """Plant ``n`` altered copies; what share is found, and how many reported pairs are false."""
    before = _pairs(ds, store)
    rng = random.Random(seed)
    folder = WORK / "planted"
    folder.mkdir(exist_ok=True)
    planted, samples, original_of = set(), list(ds.samples), {}
    for i in rng.sample(range(len(ds.samples)), n):
        original = ds.samples[i]
        target = folder / f"copy{i}.jpg"
        target.write_bytes(_variant(original.path, rng))
        name = f"planted/copy{i}.jpg"
        samples.append(Sample(str(target), original.label, "train", name))
        planted.add(tuple(sorted((original.name, name))))
        original_of[name] = original.name
    after = _pairs(Dataset(ds.root, ds.classes, samples, ds.report), store)
    twins: dict[str, set[str]] = {}
    for a, b in before:
        twins.setdefault(a, set()).add(b)
        twins.setdefault(b, set()).add(a)

    def related(a: str, b: str) -> bool:
        """A copy of an image that already had a near-copy is a near-copy of that one too: not a false pair."""
        ra, rb = original_of.get(a, a), original_of.get(b, b)
        return ra == rb or rb in twins.get(ra, set())

    found = planted & after
    new = after - before - planted
    false = {p for p in new if not related(*p)}
    reported = len(found) + len(false)
    return {"planted": n, "found": len(found), "found_share": len(found) / n, "pairs_before": len(before),
            "new_pairs": len(new), "false_pairs": len(false), "false_share": len(false) / max(1, reported)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="Also write the figures to this file.")
    parser.add_argument("--timing-only", action="store_true", help="Only the time ratios (for a quiet machine).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the time ratios (median).")
    args = parser.parse_args()
    if not BIRDS.is_dir():
        sys.exit(f"needs {BIRDS} (../shared/datasets/birds5)")
    birds = _import(BIRDS)
    figures = {"timing": timing(birds, args.rounds)}
    t = figures["timing"]
    if not args.timing_only:
        store = feature_store.FeatureStore(WORK / "built-0", limit_bytes=4 << 30)
        figures["flips_birds5"] = flips(birds, store)
        if AMAZON.is_dir():
            figures["flips_amazon"] = flips(_import(AMAZON), store)
        figures["near_duplicates"] = near_duplicates(birds, store)
    rows = [] if args.timing_only else [("birds5, 5% flipped: flips among top 2× suspects (min of 3 seeds)",
             min(figures["flips_birds5"]["share_top2x"]), "≥ 80%"),
            ("office_caltech amazon, 5% flipped (min of 3 seeds)",
             min(figures["flips_amazon"]["share_top2x"]) if "flips_amazon" in figures else float("nan"), "≥ 70%"),
            ("planted near-duplicates found", figures["near_duplicates"]["found_share"], "≥ 95%"),
            ("false pairs among those reported", figures["near_duplicates"]["false_share"], "≤ 5%")]
    for name, value, target in rows:
        print(f"{name:70s} {value:7.1%}  (target {target})")
    print(f"{'check with features stored ÷ one forward pass':70s} {t['warm_ratio']:7.2f}  (target ≤ 0.3; median of {args.rounds} rounds)")
    print(f"{'  the same, no model in memory (as in a new process)':70s} {t['warm_no_model_ratio']:7.2f}")
    print(f"{'check cold ÷ one forward pass (the server: its warm-up built the model)':70s} {t['cold_ratio']:7.2f}  "
          f"(target ≤ 1.3; median of {args.rounds} rounds)")
    print(f"{'  the same in a process that did not warm up (the CLI): model built in the call':70s} "
          f"{t['cold_model_built_ratio']:7.2f}")
    print(f"forward pass {t['forward_s']:.2f} s, cold {t['cold_s']:.2f} s ({t['cold_model_built_s']:.2f} s with the "
          f"model built), warm {t['warm_s']:.2f} s ({t['warm_no_model_s']:.2f} s without the model), "
          f"{t['images']} images")
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
