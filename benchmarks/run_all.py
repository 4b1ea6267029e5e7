"""Every speed figure of issue 11 in one command, written to docs/performance.md (a benchmark, not a test).

birds5 train (1,197 JPEGs + 25 validation), MobileNet α=0.25 at 224 px with the real ImageNet weights, batch 32.
Each figure is the median of ``--repeats`` (default 3) after a warm-up, with the spread; ratios are taken within
one repeat. The floor ("one forward pass") is a bare traced call over the images the run passes through the
backbone (train + validation), decoded by the training pipeline, timed after the call is traced.

    .venv/bin/python benchmarks/run_all.py [--quick] [--repeats 3] [--out docs/performance.md]

``--quick``: one repeat, small sizes, a smoke run of the whole command (its figures are not the table's).
KERAS_HOME defaults to a temporary copy of ../shared/keras_home; the workspace is a temporary folder.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import BIRDS5, ROOT, Figure, Timer, generated_images, machine, setup

import _report

HEAD_VARIANTS = ({"learning_rate": 1e-3}, {"learning_rate": 3e-3}, {"head": {"enabled": False}},
                 {"optimizer": "sgd", "learning_rate": 1e-2})


class Bench:
    """One process's shared state: the dataset, the traced floor call and fresh feature stores."""

    def __init__(self, work: Path, quick: bool) -> None:
        from tlcore.data import load_data

        self.work, self.quick = work, quick
        self.dataset = load_data(str(BIRDS5), work / "birds5")
        self._stores = 0
        self._floor = None
        self.model = None
        self.breakdown: list[tuple[str, float]] = []

    def config(self, **kw):
        from tlcore.runs import RunConfig

        base = dict(data=str(BIRDS5), strategy="feature_extraction", epochs=10, early_stopping=0, weights="imagenet",
                    batch_size=32, seed=0)          # the default strategy is the search: name the one measured
        return RunConfig(**{**base, **kw})

    def fresh_store(self) -> Path:
        self._stores += 1
        return self.work / f"store{self._stores}"

    def ctx(self, config, store: Path, dataset=None, events: list | None = None):
        from tlcore.strategies import TrainContext

        emit = (lambda kind, **d: events.append((time.perf_counter(), kind, d))) if events is not None else (
            lambda *a, **k: None)
        c = TrainContext(config, dataset or self.dataset, self.work, emit, threading.Event())
        if hasattr(c, "feature_store"):
            from tlcore.feature_store import FeatureStore

            c.feature_store = FeatureStore(store)
        return c

    def run(self, config, store: Path, dataset=None, events: list | None = None) -> float:
        from tlcore.strategies import get_strategy
        from tlcore.tf_env import keras

        keras.utils.set_random_seed(config.seed)
        with Timer() as t:
            c = self.ctx(config, store, dataset, events)
            result = get_strategy(config.strategy).fit(c)
        self.model = result.model
        return t.seconds

    def floor(self, paths: list[str]) -> float:
        """One bare traced forward pass over ``paths`` through the training pipeline (seconds)."""
        from tlcore.model import FreezeConfig, feature_model
        from tlcore.pipeline import image_dataset
        from tlcore.tf_env import tf

        if self._floor is None:
            model = self.ctx(self.config(), self.fresh_store()).build(freeze_cfg=FreezeConfig(mode="all"))
            fm = feature_model(model)
            call = tf.function(lambda x: fm(x, training=False),
                               input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)])
            call(tf.zeros((1, 224, 224, 3)))
            self._floor = call
        with Timer() as t:
            for batch in image_dataset(paths, None, 224, 32):
                self._floor(batch)
        return t.seconds

    def paths(self, dataset=None) -> list[str]:
        d = dataset or self.dataset
        return [s.path for s in d.split("train")] + [s.path for s in d.split("val")]


# -- the table's figures: each function is one repeat and returns one value ----------------------------------
def fe_cold(b: Bench) -> float:
    events: list = []
    seconds = b.run(b.config(), b.fresh_store(), events=events)
    b.breakdown = breakdown(events, seconds)
    return seconds / b.floor(b.paths())


def breakdown(events: list, total: float) -> list[tuple[str, float]]:
    """Build, feature pass, head epochs of one run, from its events' times."""
    if not events:
        return []
    t0 = events[0][0]
    first_progress = next((t for t, k, d in events if k == "progress"), None)
    last_progress = max((t for t, k, d in events if k == "progress"), default=None)
    head = next((t for t, k, d in events if k == "phase" and d.get("phase") == "head"), None)
    epochs = [t for t, k, d in events if k == "epoch"]
    rows = []
    if first_progress and last_progress:
        rows += [("build the model (before the first feature batch, incl. tracing)", first_progress - t0),
                 ("feature pass (after the first batch)", last_progress - first_progress)]
    if head and epochs:
        rows += [("head: store, compile, first epoch (tracing)", epochs[0] - (last_progress or t0)),
                 (f"head: the other {len(epochs) - 1} epochs", epochs[-1] - epochs[0])]
    rows.append(("whole run (from the first event)", total))
    return rows


def fe_second(b: Bench) -> float:
    store = b.fresh_store()
    b.run(b.config(), store)
    return b.run(b.config(learning_rate=3e-3), store) / b.floor(b.paths())


def compare5(b: Bench) -> float:
    store = b.fresh_store()
    total = sum(b.run(b.config(**v), store) for v in HEAD_VARIANTS)
    total += b.run(b.config(strategy="few_shot"), store)
    return total / b.floor(b.paths())


def predictor_rates(b: Bench) -> tuple[float, float]:
    """(Predictor throughput ÷ bare rate on 320 images, median one-image latency ÷ (decode + one bare call))."""
    from tlcore.pipeline import decode_bytes, image_dataset
    from tlcore.predict import Predictor
    from tlcore.tf_env import tf

    if b.model is None:
        b.run(b.config(), b.fresh_store())
    model = b.model
    paths = [s.path for s in b.dataset.split("train")][:320]
    predictor = Predictor(model, list(b.dataset.classes), 224).warm_up()
    bare = tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec((None, 224, 224, 3), tf.float32)])
    bare(tf.zeros((1, 224, 224, 3)))
    with Timer() as t_bare:
        for batch in image_dataset(paths, None, 224, 32):
            bare(batch).numpy()
    with Timer() as t_pred:
        predictor.probabilities(paths)
    ratios = []
    for path in paths[:12]:
        with Timer() as t1:
            bare(decode_bytes(tf.io.read_file(path), 224)[None]).numpy()
        with Timer() as t2:
            predictor.probabilities([path])
        ratios.append(t2.seconds / t1.seconds)
    ratios.sort()
    return t_bare.seconds / t_pred.seconds, ratios[len(ratios) // 2]


def pipeline_ratio(b: Bench) -> float:
    """Input pipeline images/s (decode, resize, shuffle, batch) ÷ training images/s of the whole model."""
    from tlcore.model import FreezeConfig
    from tlcore.pipeline import image_dataset
    from tlcore.tf_env import tf

    c = b.ctx(b.config(), b.fresh_store())
    paths, labels = c.paths("train"), c.labels("train")
    with Timer() as t:
        n = sum(int(x.shape[0]) for x, _ in image_dataset(paths, labels, 224, 32, shuffle=True))
    pipeline_rate = n / t.seconds
    model = c.build(freeze_cfg=FreezeConfig(mode="none"))
    c.compile(model, 1e-4)
    x, y = next(iter(image_dataset(paths, labels, 224, 32)))
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    steps = 3 if b.quick else 8
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)          # traced
    with Timer() as t:
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return pipeline_rate / (steps * 32 / t.seconds)


def finetune(b: Bench, quick: bool = False) -> tuple[Figure | None, str]:
    path = Path(__file__).with_name("bench_finetune_cache.py")
    if not path.is_file():
        return None, "benchmarks/bench_finetune_cache.py is missing"
    spec = importlib.util.spec_from_file_location("bench_finetune_cache", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        result = module.measure(quick=quick) if "quick" in module.measure.__code__.co_varnames else module.measure()
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, never crashes the others
        return None, f"bench_finetune_cache.measure() failed: {type(exc).__name__}: {exc}"
    speed = next((result[k] for k in ("speedup", "speed_up", "ratio") if k in result), None)
    shown = ("accuracy_gap_points", "cached_test_accuracy", "full_test_accuracy", "warm_speedup", "seconds_cached",
             "seconds_full", "epochs", "skipped")
    others = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                       if k in shown)
    if speed is None:
        return None, f"measure() gave no speed-up: {others}"
    values = result.get("values") or [speed]
    return Figure([float(v) for v in values]), others


# -- scale curve and memory -----------------------------------------------------------------------------------
def scale_curve(b: Bench, sizes: list[int], repeats: int) -> tuple[list[dict], dict | None]:
    from tlcore.data import load_data

    import numpy as np

    rows = []
    for n in sizes:
        folder = generated_images(b.work / f"scale{n}", n, source=BIRDS5 / "train", seed=n)
        dataset = load_data(folder, b.work / f"scale{n}_data", val_split=0.02, test_split=0.0)
        fig = Figure([b.run(b.config(data=str(folder)), b.fresh_store(), dataset=dataset) for _ in range(repeats)])
        rows.append({"images": n, "seconds": fig.as_dict()})
        print(f"  scale {n}: {fig.median:.1f} s", flush=True)
    if len(rows) < 2:
        return rows, None
    x = np.array([r["images"] for r in rows], float)
    y = np.array([r["seconds"]["median"] for r in rows], float)
    slope, intercept = np.polyfit(x, y, 1)
    return rows, {"slope_ms": slope * 1000, "intercept_s": intercept, "at_100k_s": intercept + slope * 100_000}


def rss_child(folder: str) -> None:
    """In a fresh process: one feature-extraction run on ``folder``; prints its peak RSS (MB) as JSON."""
    setup(Path(folder).parent / "rss_work")
    from tlcore.data import load_data

    b = Bench.__new__(Bench)
    work = Path(tempfile.mkdtemp(prefix="rss-", dir=Path(folder).parent))    # a fresh (empty) feature store
    b.work, b.quick, b._stores, b._floor, b.model = work, True, 0, None, None
    b.dataset = load_data(folder, work / "data", val_split=0.02, test_split=0.0)
    seconds = b.run(b.config(data=folder), b.fresh_store())
    print(json.dumps({"rss_mb": peak_rss_mb(), "seconds": seconds}))


def peak_rss_mb() -> float:
    """This process's own peak RSS: /proc's VmHWM, which starts again at exec. (``ru_maxrss`` keeps the peak of
    the process before exec on Linux, so a child started by a large parent reported the parent's size.)"""
    from tlcore.worker_process import rss_mb

    return rss_mb(os.getpid(), "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(b: Bench, n: int, repeats: int) -> Figure:
    folder = generated_images(b.work / f"rss{n}", n, seed=n)
    values = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(folder)], capture_output=True, text=True,
                             timeout=3600)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not line:
            raise RuntimeError(f"the RSS child failed: {out.stderr[-2000:]}")
        values.append(json.loads(line[-1])["rss_mb"])
    return Figure(values)


# -- the command --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="One repeat, small sizes: a smoke run.")
    parser.add_argument("--repeats", type=int, default=None, help="Repeats per figure (default 3; --quick: 1).")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--json", default=None, help="Also write the raw figures here.")
    parser.add_argument("--only", default="", help="Comma-separated figure keys to run (default: all).")
    parser.add_argument("--finetune-quick", action="store_true",
                        help="Run bench_finetune_cache.measure(quick=True) (2 epochs, 1 repeat) to save time.")
    parser.add_argument("--merge", default=None,
                        help="A --json file of an earlier run: keep its figures, re-measure only --only's.")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child)
    if not BIRDS5.is_dir():
        sys.exit(f"needs {BIRDS5} (../shared/datasets/birds5)")
    repeats = args.repeats or (1 if args.quick else 3)
    work = setup()
    bench = Bench(work, args.quick)
    only = set(filter(None, args.only.split(",")))

    def want(key: str) -> bool:
        return not only or key in only

    figures: dict[str, dict | None] = {}
    notes: dict[str, str] = {}

    def measure(key: str, fn, warmup: int = 1) -> None:
        if not want(key):
            return
        print(f"{key} ...", flush=True)
        try:
            for _ in range(warmup):
                fn(bench)
            fig = Figure([float(fn(bench)) for _ in range(repeats)])
            figures[key] = fig.as_dict()
            print(f"  {key}: {fig.median:.3f} ({fig.spread[0]:.3f}–{fig.spread[1]:.3f})", flush=True)
        except Exception as exc:  # noqa: BLE001 - one failing figure must not lose the others
            figures[key], notes[key] = None, f"failed: {type(exc).__name__}: {exc}"
            print(f"  {key} failed: {exc!r}", flush=True)

    command = "KERAS_HOME=<copy of ../shared/keras_home> .venv/bin/python benchmarks/run_all.py" + (
        " --quick" if args.quick else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    scale: list[dict] = []
    state: dict = {"projection": None}
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        figures.update({k: v for k, v in earlier.get("figures", {}).items() if not want(k) or not only})
        notes.update({k: v for k, v in earlier.get("notes", {}).items() if not want(k) or not only})
        if not want("scale") or not only:
            scale[:], state["projection"] = earlier.get("scale") or [], earlier.get("projection")
        bench.breakdown = [tuple(row) for row in earlier.get("breakdown") or []]

    def report(final: bool = False) -> str:
        """Rewrite the report with what is measured so far (a run cut short still leaves its figures)."""
        pending = {t.key: "not reached yet (run in progress or cut short)" for t in _report.TARGETS
                   if t.key not in figures and want(t.key) and not final}
        text = _report.render(figures, machine=machine(), command=command,
                              date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), repeats=repeats,
                              notes={**pending, **notes}, scale=scale, projection=state["projection"],
                              breakdown=bench.breakdown, extra=notes_text(args.quick))
        _report.write(args.out, text)
        if args.json:
            Path(args.json).write_text(json.dumps({"figures": figures, "notes": notes, "scale": scale,
                                                   "projection": state["projection"],
                                                   "breakdown": bench.breakdown}, indent=2))
        return text

    measure("fe_cold", fe_cold)
    report()
    measure("fe_second", fe_second, warmup=0)
    measure("compare5", compare5, warmup=0)
    report()
    if want("predictor") or want("latency"):
        pairs = [predictor_rates(bench) for _ in range(repeats + 1)][1:]
        figures["predictor"] = Figure([p[0] for p in pairs]).as_dict()
        figures["latency"] = Figure([p[1] for p in pairs]).as_dict()
        print(f"  predictor {figures['predictor']['median']:.2f}, latency {figures['latency']['median']:.2f}")
    measure("pipeline", pipeline_ratio)
    report()
    if want("scale"):
        scale[:], state["projection"] = scale_curve(bench, [100, 250] if args.quick else [250, 1000, 4000], repeats)
        report()
    for key, n in zip(("rss_1000", "rss_10000"), (200, 1000) if args.quick else (1000, 10000)):
        if want(key):
            try:
                figures[key] = peak_rss(bench, n, repeats).as_dict()
                if args.merge:
                    notes[key] = "measured in a later run than the rows above (--merge)"
                if args.quick:
                    notes[key] = f"--quick: {n} images"
            except Exception as exc:  # noqa: BLE001
                figures[key], notes[key] = None, f"failed: {exc}"
            report()
    if want("finetune"):
        print("finetune ...", flush=True)
        fig, note = finetune(bench, quick=args.quick or args.finetune_quick)
        if args.finetune_quick and not args.quick:
            note = "measure(quick=True): 2 epochs, 1 repeat; " + note
        figures["finetune"] = fig.as_dict() if fig else None
        if note:
            notes["finetune"] = note
    print(report(final=True))


def notes_text(quick: bool) -> list[str]:
    from tlcore.strategies.base import HEAD_STEPS_PER_EXECUTION

    lines = [
        "GPU: no GPU was lent to the session that wrote this report, so there are no GPU or mixed-precision "
        "figures; run the same command on a GPU machine to add them.",
        "The floor is one bare traced call over the 1,222 train + validation images a run passes through the "
        "backbone, decoded by the training pipeline (the issue's `bench_feature_cache.py` counted the 1,197 train "
        "images only: 2% less work).",
        f"Head training runs {HEAD_STEPS_PER_EXECUTION} batches per traced call (`steps_per_execution`); the "
        "event callback counts the batches each call ran, and a Stop takes effect when the call in progress ends "
        f"(at most {HEAD_STEPS_PER_EXECUTION} batches of the head on cached features: milliseconds).",
        "The 5-run comparison: four feature-extraction runs (learning rate 1e-3 and 3e-3, no hidden layer, SGD) "
        "and one few-shot run, sharing one feature store that starts empty.",
        "The scale curve resamples birds5's train images (a different crop of each, so every file is new to the "
        "store); peak RSS runs each feature extraction in its own process (`resource.getrusage`) on generated "
        "96 px JPEGs.",
        "Fine-tuning: `benchmarks/bench_finetune_cache.py`'s `measure()` (its own repeats and accuracy figures).",
    ]
    if quick:
        lines.insert(0, "**--quick smoke run**: one repeat and small sizes; these are not the table's figures.")
    return lines


if __name__ == "__main__":
    main()
