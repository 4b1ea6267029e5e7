"""Worker benchmark (issue 14): what a run in its own process costs, and how much a warm spare hides.

On birds5, feature extraction with MobileNet α=0.25 ImageNet weights at 224 px, measured in one run, each run in
a fresh workspace (so no run reuses another's cached features):
  (a) the start-up cost of a worker: a fresh interpreter importing the engine (TensorFlow), timed in a child
  (b) the run in a thread of this process, TensorFlow already imported (the old way: a warm server)
  (c) the run in a cold child process (no spare: the child imports TensorFlow first)
  (d) the run in a warm child process (a spare started beforehand, TensorFlow imported)
Times are from submit to the run's end. Prints c/b and d/b (d/b close to 1 means the spare hides the start-up).

    KERAS_HOME=<copy of ../shared/keras_home> .venv/bin/python benchmarks/bench_workers.py [--epochs 3] [--repeats 1]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BIRDS5, ROOT, machine, setup  # noqa: E402 - also puts the repository on sys.path

_IMPORT = "import time; t = time.perf_counter(); import tlcore.runner; print(time.perf_counter() - t)"


def import_seconds() -> float:
    """A fresh interpreter importing the engine (TensorFlow, Keras, tlcore), as a worker does first."""
    out = subprocess.run([sys.executable, "-c", _IMPORT], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def timed_run(work: Path, executor, config, label: str) -> tuple[float, dict]:
    """Submit one run to a fresh manager and workspace; seconds from submit to its end, and its phase times."""
    from tlcore.jobs import JobManager
    from tlcore.runs import RunState, RunStore

    store = RunStore(Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work)))
    manager = JobManager(store, max_concurrent=1, executor=executor)
    if hasattr(manager.executor, "wait_ready"):
        manager.executor.wait_ready(300)                   # a spare, if any, has imported TensorFlow
    try:
        t = time.perf_counter()
        run_id = manager.submit(config, owner="bench")
        state = manager.wait(run_id, 3600)
        seconds = time.perf_counter() - t
        if state != RunState.DONE:
            sys.exit(f"{label}: the run ended {state.value}: {store.get(run_id).error}")
        events = store.read_events(run_id)
        first = next(e["t"] for e in events if e["type"] == "queued")
        marks = {}
        for e in events:                                     # seconds after submit at which each phase began
            if e["type"] == "phase":
                marks.setdefault(e.get("phase"), round(e["t"] - first, 1))
            if e["type"] == "progress":
                marks.setdefault("features", round(e["t"] - first, 1))
        return seconds, marks
    finally:
        manager.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BIRDS5))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not Path(args.data).is_dir():
        sys.exit(f"needs {args.data} (../shared/datasets/birds5)")
    work = setup()
    from tlcore.runs import RunConfig
    from tlcore.worker import ThreadExecutor
    from tlcore.worker_process import ProcessExecutor

    config = RunConfig(data=args.data, strategy="feature_extraction", weights="imagenet", epochs=args.epochs,
                       early_stopping=0)
    print(machine())
    print(f"birds5, feature extraction, MobileNet α=0.25 ImageNet @224, {args.epochs} epochs, batch "
          f"{config.batch_size}; {args.repeats} repeat(s), median")
    imports = [import_seconds() for _ in range(max(1, args.repeats))]
    import tlcore.runner  # noqa: F401 - the thread run below is a warm server's: TensorFlow already imported

    figures = {"thread": [], "cold": [], "warm": []}
    marks = {}
    for _ in range(args.repeats):
        for label, make in (("thread", ThreadExecutor), ("cold", lambda: ProcessExecutor(warm=0)),
                            ("warm", lambda: ProcessExecutor(warm=1))):
            seconds, marks[label] = timed_run(work, make(), config, label)
            figures[label].append(seconds)
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"(a) worker start-up, engine import in a fresh interpreter: {statistics.median(imports):.1f} s")
    for key, text in (("thread", "(b) thread in this process, TF loaded"), ("cold", "(c) cold child process"),
                      ("warm", "(d) warm child process (spare ready)")):
        print(f"{text:42} {med[key]:6.1f} s   phases at (s after submit): {marks[key]}")
    print(f"c/b = {med['cold'] / med['thread']:.2f}   d/b = {med['warm'] / med['thread']:.2f}   "
          f"start-up hidden by the spare: {med['cold'] - med['warm']:.1f} s")


if __name__ == "__main__":
    main()
