"""Feature-cache benchmark (issue 2): is feature extraction close to the cost of one forward pass?

On the birds5 train split, MobileNet α=0.25 at 224 px, 10 epochs of feature extraction, measured in one run:
  (a) tlcore's feature extraction, total: one cached forward pass + 10 head epochs on the cache
  (b) one forward pass over the same images (the floor: traced beforehand, the faster of two passes)
  (c) the classic recipe: model.fit of the whole model with a frozen base, same data, same epochs
Prints a/b (target <= 1.3) and c/a (target >= 5).

    KERAS_HOME=<copy of ../shared/keras_home> .venv/bin/python benchmarks/bench_feature_cache.py [--epochs 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tlcore.data import load_data  # noqa: E402
from tlcore.model import feature_model  # noqa: E402
from tlcore.pipeline import image_dataset  # noqa: E402
from tlcore.runs import RunConfig  # noqa: E402
from tlcore.strategies import TrainContext, get_strategy  # noqa: E402
from tlcore.tf_env import keras, tf  # noqa: E402

BIRDS5 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "birds5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BIRDS5))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"needs {args.data} (../shared/datasets/birds5)")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    dataset = load_data(args.data, work / "data")
    config = RunConfig(data=args.data, epochs=args.epochs, early_stopping=0, weights="imagenet")
    n = len(dataset.split("train"))
    print(f"birds5 train split: {n} images, MobileNet α=0.25 @224, {args.epochs} epochs, batch {config.batch_size}")

    def ctx() -> TrainContext:
        return TrainContext(config, dataset, work, lambda *a, **k: None, threading.Event())

    # (a) tlcore feature extraction, end to end (build + cached features + head epochs)
    keras.utils.set_random_seed(0)
    t = time.perf_counter()
    c = ctx()
    result = get_strategy("feature_extraction").fit(c)
    a = time.perf_counter() - t

    # (b) the floor: one forward pass over the same images, same pipeline
    fm = feature_model(result.model)
    ds = image_dataset(c.paths("train"), None, c.image_size, config.batch_size)
    first = next(iter(ds.take(1)))
    call = tf.function(lambda x: fm(x, training=False),
                       input_signature=[tf.TensorSpec((None, *first.shape[1:]), first.dtype)])
    call(first)  # traced once, outside the timing: the floor is the forward pass itself
    b = float("inf")
    for _ in range(2):  # the faster of two passes (the first also warms the file cache)
        t = time.perf_counter()
        for batch in ds:
            call(batch)
        b = min(b, time.perf_counter() - t)

    # (c) the classic recipe: model.fit of the whole model, frozen base, streamed images every epoch
    keras.utils.set_random_seed(0)
    t = time.perf_counter()
    c2 = ctx()
    from tlcore.model import FreezeConfig

    model = c2.build(freeze_cfg=FreezeConfig(mode="all"))
    c2.compile(model, config.learning_rate)
    model.fit(c2.images("train", shuffle=True), validation_data=c2.images("val"), epochs=args.epochs, verbose=0)
    cc = time.perf_counter() - t

    print(f"(a) feature extraction with the cache: {a:7.1f} s")
    print(f"(b) one forward pass (the floor):      {b:7.1f} s   ({n / b:.0f} images/s)")
    print(f"(c) classic model.fit, frozen base:    {cc:7.1f} s")
    print(f"a/b = {a / b:.2f}  (target <= 1.3)")
    print(f"c/a = {cc / a:.2f}  (target >= 5)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
