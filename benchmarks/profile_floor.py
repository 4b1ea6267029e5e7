"""Where the time of a feature-extraction run goes (issue 11, part 3), on birds5 train, MobileNet α=0.25 @224.

Prints: model build (without weights, then the ImageNet weights), the feature function's tracing, the feature
pass, the head's compile and epochs (the first one includes tracing), against one bare forward pass.

    .venv/bin/python benchmarks/profile_floor.py [--epochs 10]
"""
from __future__ import annotations

import argparse
import threading
import time

from _common import Timer, birds5_dataset, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cprofile", action="store_true", help="Also print the run's 25 costliest calls.")
    parser.add_argument("--spe", type=int, default=None, help="Head batches per traced call (default: tlcore's).")
    args = parser.parse_args()
    work = setup()
    with Timer() as t_import:
        from tlcore.backbones import create_backbone
        from tlcore.model import FreezeConfig, feature_model
        from tlcore.pipeline import image_dataset
        from tlcore.runs import RunConfig
        from tlcore.strategies import TrainContext
        from tlcore.tf_env import keras, tf
    print(f"import TF + tlcore            {t_import.seconds:6.2f} s")
    if args.spe:
        from tlcore.strategies import base

        base.HEAD_STEPS_PER_EXECUTION = args.spe
    dataset = birds5_dataset(work)
    config = RunConfig(data="birds5", epochs=args.epochs, early_stopping=0, weights="imagenet")
    events: list[tuple[float, str, dict]] = []
    ctx = TrainContext(config, dataset, work, lambda kind, **d: events.append((time.perf_counter(), kind, d)),
                       threading.Event())
    n_train, n_val = len(ctx.paths("train")), len(ctx.paths("val"))
    print(f"birds5: {n_train} train + {n_val} val images, batch {config.batch_size}")
    with Timer() as t:
        create_backbone("mobilenet_025", "none", 224)
    print(f"backbone build, no weights     {t.seconds:6.2f} s")
    with Timer() as t:
        create_backbone("mobilenet_025", "imagenet", 224)
    print(f"backbone build + weights      {t.seconds:6.2f} s")
    with Timer() as t:
        model = ctx.build(freeze_cfg=FreezeConfig(mode="all"))
    print(f"ctx.build (whole model)       {t.seconds:6.2f} s")

    # the floor: a bare traced call over the train images
    fm = feature_model(model)
    call = tf.function(lambda x: fm(x, training=False),
                       input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)])
    ds = image_dataset(ctx.paths("train"), None, 224, config.batch_size)
    with Timer() as t:
        call(next(iter(ds.take(1))))
    print(f"trace of a bare call          {t.seconds:6.2f} s")
    floor = float("inf")
    for _ in range(2):
        with Timer() as t:
            for batch in ds:
                call(batch)
        floor = min(floor, t.seconds)
    print(f"floor: one pass over train    {floor:6.2f} s  ({n_train / floor:.0f} images/s)")

    # tlcore's run, step by step
    keras.utils.set_random_seed(0)
    ctx2 = TrainContext(config, dataset, work, lambda kind, **d: events.append((time.perf_counter(), kind, d)),
                        threading.Event())
    events.clear()
    with Timer() as t_all:
        with Timer() as t:
            model = ctx2.build(freeze_cfg=FreezeConfig(mode="all"))
        t_build = t.seconds
        profiler = None
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        with Timer() as t:
            ctx2.train_head(model, args.epochs)
        t_head_total = t.seconds
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    progress = [e for e in events if e[1] == "progress"]
    phase_head = next((e for e in events if e[1] == "phase" and e[2].get("phase") == "head"), None)
    epochs = [e for e in events if e[1] == "epoch"]
    if progress:
        first = progress[0][0] - t_all.start - t_build
        print(f"run: build                    {t_build:6.2f} s")
        print(f"run: first feature batch      {first:6.2f} s  (trace + first batch)")
        print(f"run: feature pass             {progress[-1][0] - t_all.start - t_build:6.2f} s  "
              f"({len(progress)} batches, train+val)")
    if phase_head and epochs:
        start = progress[-1][0] if progress else t_all.start
        print(f"run: head compile → phase     {phase_head[0] - start:6.2f} s")
        prev = phase_head[0]
        for e in epochs:
            print(f"run: head epoch {e[2]['epoch']:>2}             {e[0] - prev:6.3f} s")
            prev = e[0]
        print(f"run: after the last epoch     {t_all.start + t_all.seconds - prev:6.3f} s")
    print(f"run: train_head total         {t_head_total:6.2f} s")
    print(f"run: total                    {t_all.seconds:6.2f} s   ÷ floor = {t_all.seconds / floor:.2f}")
    print(f"     (floor over train+val:   ÷ {floor * (n_train + n_val) / n_train:.2f} s = "
          f"{t_all.seconds / (floor * (n_train + n_val) / n_train):.2f})")


if __name__ == "__main__":
    main()
