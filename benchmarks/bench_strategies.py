"""Real-data figures for the domain-adaptation and few-shot strategies (docs/strategies.md quotes them).

1. office_caltech amazon → webcam, MobileNet α=0.25 ImageNet features at 224 px: webcam accuracy of the
   source-only model and of DANN (same adapter + label head, same steps; DANN adds the reversed domain loss),
   over several seeds on one set of cached features, with the discriminator's balanced domain accuracy.
   Webcam labels are used only to score.
2. birds5 few-shot: nearest-prototype test accuracy and 5-way 1-shot / 5-shot episodes (mean ± 95% CI) on the
   held-out images (val + test), with the default centring (CL2N) and without it.

    .venv/bin/python benchmarks/bench_strategies.py [--seeds 5] [--epochs 20] [--episodes 600]

KERAS_HOME defaults to a temporary copy of ../shared/keras_home (the real ImageNet weights).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))


def _keras_home() -> None:
    if "KERAS_HOME" not in os.environ and (SHARED / "keras_home").is_dir():
        home = Path(tempfile.mkdtemp(prefix="bench-keras-")) / "keras_home"
        shutil.copytree(SHARED / "keras_home", home)
        os.environ["KERAS_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def office_caltech(work: Path, seeds: int, epochs: int) -> None:
    import numpy as np

    from tlcore.catalog import DomainAdaptationOptions
    from tlcore.data import load_data
    from tlcore.runs import RunConfig
    from tlcore.strategies.base import TrainContext
    from tlcore.strategies._common import as_split, frozen_trunk
    from tlcore.strategies.domain_adaptation import _Adaptation, target_labels, train_dann
    from tlcore.tf_env import keras

    office = SHARED / "datasets" / "office_caltech"
    if not (office / "amazon").is_dir():
        print(f"skipped: needs {office}")
        return
    source = load_data(office / "amazon", work / "amazon")
    target = load_data(office / "webcam", work / "webcam", val_split=0, test_split=0, unlabelled=True)
    base = dict(data=str(office / "amazon"), target_data=str(office / "webcam"), strategy="domain_adaptation",
                weights="imagenet", image_size=224, epochs=epochs, batch_size=32, early_stopping=0,
                options={"method": "dann"})
    ctx = TrainContext(RunConfig(**base), source, work, lambda *a, **k: None, threading.Event(), target=target)
    t = time.perf_counter()
    trunk = frozen_trunk(ctx)
    xs, xt = ctx.extract_features(trunk, "train"), ctx.extract_features(trunk, "train", dataset=as_split(target))
    val = (ctx.extract_features(trunk, "val"), ctx.labels("val"))
    print(f"office_caltech amazon→webcam: {len(xs)} amazon train, {len(xt)} webcam images; features "
          f"{time.perf_counter() - t:.0f} s; MobileNet α=0.25 @224, {epochs} epochs, SGD 0.01, dropout 0.5")
    yt, ys = target_labels(ctx), ctx.labels("train")
    rows = []
    for seed in range(seeds):
        ctx.config = RunConfig(**base, seed=seed)
        row = []
        for adversarial in (False, True):
            keras.utils.set_random_seed(seed)
            net = _Adaptation(xs.shape[1], len(ctx.classes), DomainAdaptationOptions.parse({}))
            stats = train_dann(ctx, net, xs, ys, xt, yt, val, adversarial=adversarial)
            row += [stats["target_accuracy"], stats["domain_accuracy"]]
        rows.append(row)
        print(f"  seed {seed}: webcam accuracy source-only {row[0]:.3f}  DANN {row[2]:.3f}  ({row[2] - row[0]:+.3f});"
              f"  domain accuracy {row[1]:.3f} → {row[3]:.3f}")
    r = np.array(rows)
    print(f"  mean ± sd over {seeds} seeds: source-only {r[:, 0].mean():.3f} ± {r[:, 0].std(ddof=1):.3f}, "
          f"DANN {r[:, 2].mean():.3f} ± {r[:, 2].std(ddof=1):.3f}; DANN ≥ source-only in "
          f"{int((r[:, 2] >= r[:, 0]).sum())}/{seeds} seeds; domain accuracy {r[:, 1].mean():.3f} → {r[:, 3].mean():.3f}")


def birds5(work: Path, episodes_n: int) -> None:
    import numpy as np

    from tlcore.data import load_data
    from tlcore.runs import RunConfig
    from tlcore.strategies._common import frozen_trunk
    from tlcore.vectors import unit
    from tlcore.strategies.base import TrainContext
    from tlcore.strategies.few_shot import class_means, embed, episodes

    data = SHARED / "datasets" / "birds5"
    if not data.is_dir():
        print(f"skipped: needs {data}")
        return
    dataset = load_data(data, work / "birds5")
    ctx = TrainContext(RunConfig(data=str(data), strategy="few_shot", weights="imagenet", image_size=224),
                       dataset, work, lambda *a, **k: None, threading.Event())
    t = time.perf_counter()
    trunk = frozen_trunk(ctx)
    feats = {s: ctx.extract_features(trunk, s) for s in ("train", "val", "test")}
    labels = {s: ctx.labels(s) for s in feats}
    print(f"\nbirds5 few-shot: {sum(len(v) for v in feats.values())} images, features {time.perf_counter() - t:.0f} s; "
          f"episodes on the {len(feats['val']) + len(feats['test'])} held-out images (val + test), 5 queries "
          f"per class, {episodes_n} episodes")
    held_y = np.concatenate([labels["val"], labels["test"]])
    for name, centre in (("centred + L2 (default)", feats["train"].mean(0)), ("L2 only", None)):
        emb = {s: embed(x, None, centre) for s, x in feats.items()}
        means, _ = class_means(emb["train"], labels["train"], len(ctx.classes))
        test_acc = float(np.mean((emb["test"] @ unit(means).T).argmax(1) == labels["test"]))
        held = np.concatenate([emb["val"], emb["test"]])
        one = episodes(held, held_y, 5, 1, 5, episodes_n, seed=0)
        five = episodes(held, held_y, 5, 5, 5, episodes_n, seed=0)
        print(f"  {name:24s} test accuracy (prototypes of all train images) {test_acc:.3f}; "
              f"5-way 1-shot {one[0]:.3f} ± {one[1]:.3f}; 5-way 5-shot {five[0]:.3f} ± {five[1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=600)
    args = parser.parse_args()
    _keras_home()
    work = Path(tempfile.mkdtemp(prefix="bench-strategies-"))
    try:
        office_caltech(work, args.seeds, args.epochs)
        birds5(work, args.episodes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
