"""Cached fine-tuning benchmark (issue 11, part 2): the top blocks trained on activations cached at the freeze
boundary, against ``model.fit`` of the whole model on the images, augmentation off.

On birds5 (train 1,197, val 25, test 25 images), MobileNet α=0.25 at 224 px with ImageNet weights, the default
freeze (the top 20 layers train), the head trained once beforehand; then from the same weights, in one process:
  (a) tlcore's fine-tuning phase (``strategies._boundary.train_top``): one pass of the frozen part over the train
      and validation images into a cold feature store, then the epochs on the top alone;
  (b) the classic recipe (``TrainContext.train_full``): ``model.fit`` of the whole model on streamed images.
The figure is (b) ÷ (a), the median of ``repeats`` after a warm-up, with the test and validation accuracy of both
(the same batches in the same order, so they should agree) and the warm figure (a second run, store filled).

    .venv/bin/python benchmarks/bench_finetune_cache.py [--epochs 5] [--repeats 3] [--quick]

``measure()`` is what ``benchmarks/run_all.py`` calls; without ../shared/datasets/birds5 it returns a reason.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _common import BIRDS5, setup


def _accuracy(model, ctx, split: str) -> float:
    if not ctx.dataset.split(split):
        return float("nan")
    _, acc = model.evaluate(ctx.images(split), verbose=0)
    return float(acc)


def measure(quick: bool = False, epochs: int | None = None, repeats: int | None = None,
            data: str | Path | None = None) -> dict:
    """{"speedup": median (b)/(a), "values": per repeat, accuracies, seconds, ...}, or {"skipped": reason}."""
    data = Path(data or BIRDS5)
    if not data.is_dir():
        return {"skipped": f"needs {data} (../shared/datasets/birds5), which is absent here"}
    work = setup(Path(tempfile.mkdtemp(prefix="bench-finetune-")))
    try:
        return _measure(work, data, quick, epochs, repeats)
    finally:        # the data copy and the stores (hundreds of MB); a Keras cache set up here stays
        for name in ("data", "stores"):
            shutil.rmtree(work / name, ignore_errors=True)


def _measure(work: Path, data: Path, quick: bool, epochs: int | None, repeats: int | None) -> dict:
    from tlcore.data import load_data
    from tlcore.feature_store import FeatureStore
    from tlcore.model import FreezeConfig, freeze, get_backbone
    from tlcore.runs import RunConfig
    from tlcore.strategies import TrainContext
    from tlcore.strategies._boundary import train_top
    from tlcore.tf_env import keras

    epochs = epochs or (2 if quick else 5)
    repeats = repeats or (1 if quick else 3)
    dataset = load_data(str(data), work / "data")
    config = RunConfig(data=str(data), strategy="fine_tune", weights="imagenet", epochs=3, fine_tune_epochs=epochs,
                       early_stopping=0, seed=0)
    events: list = []

    def context(store_dir: Path) -> TrainContext:
        ctx = TrainContext(config, dataset, work / "run", lambda kind, **d: events.append((kind, d)),
                           threading.Event())
        ctx.feature_store = FeatureStore(store_dir)
        return ctx

    keras.utils.set_random_seed(0)
    ctx = context(work / "stores" / "head")
    model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
    ctx.train_head(model, config.epochs)                     # once: both recipes start from these weights
    start = model.get_weights()

    def fine_tune(cached: bool, store_dir: Path) -> tuple[float, object, TrainContext]:
        keras.utils.set_random_seed(0)
        c = context(store_dir)
        m = c.build(freeze_cfg=FreezeConfig(mode="all"))
        m.set_weights(start)
        freeze(get_backbone(m), config.freeze)
        c.compile(m, config.fine_tune_learning_rate)
        t = time.perf_counter()
        if not (cached and train_top(c, m, epochs)):
            if cached:
                why = next((d.get("reason") for k, d in reversed(events) if k == "cache"), "no cache event")
                raise RuntimeError(f"the cached path was not taken: {why}")
            c.train_full(m, epochs, phase="fine-tune")
        return time.perf_counter() - t, m, c

    fine_tune(True, work / "stores" / "warmup")                   # warm-up: traces, file cache
    fine_tune(False, work / "stores" / "warmup")
    ratios, cached_s, full_s, warm_s = [], [], [], []
    for i in range(repeats):
        a, cached_model, cached_ctx = fine_tune(True, work / "stores" / str(i))
        w, _, _ = fine_tune(True, work / "stores" / str(i))     # a second run: the store has every activation
        b, full_model, full_ctx = fine_tune(False, work / "stores" / str(i))
        ratios.append(b / a)
        cached_s.append(a)
        full_s.append(b)
        warm_s.append(w)
    acc = {f"{name}_{split}_accuracy": _accuracy(m, c, split)
           for name, m, c in (("cached", cached_model, cached_ctx), ("full", full_model, full_ctx))
           for split in ("test", "val")}
    cache = next((d for k, d in reversed(events) if k == "cache" and d.get("used")), {})
    return {
        "speedup": statistics.median(ratios), "values": ratios,
        "warm_speedup": statistics.median(f / w for f, w in zip(full_s, warm_s)),
        "seconds_cached": statistics.median(cached_s), "seconds_full": statistics.median(full_s),
        "seconds_warm": statistics.median(warm_s), **acc,
        "accuracy_gap_points": round(100 * abs(acc["cached_test_accuracy"] - acc["full_test_accuracy"]), 2),
        "epochs": epochs, "train_images": len(dataset.split("train")), "boundary": cache.get("boundary"),
        "boundary_megabytes": cache.get("megabytes"), "dtype": cache.get("dtype"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BIRDS5))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = measure(args.quick, args.epochs, args.repeats, args.data)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
