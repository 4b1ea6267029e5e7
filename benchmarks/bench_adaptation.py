"""Domain adaptation methods on a small gap and on a large one (issue 15 part 5; docs/strategies.md).

- small gap: office_caltech amazon (labelled) → webcam (unlabelled);
- large gap: birds5 photos → pencil sketches. birds5's train images are split in two halves by a seeded shuffle:
  the first half stays photos (the labelled source), the second becomes sketches (greyscale, edges, inverted,
  with PIL) as the unlabelled target. No image is in both domains.

Each (gap, method, seed) is one real run of the app (MobileNet α=0.25 ImageNet at 224 px, default options but the
method, 20 epochs); target labels come from the class-named folders and are used only to score. The table gives
the adapted model's target accuracy and the source-only model's, trained alongside on the same features.

    .venv/bin/python benchmarks/bench_adaptation.py [--seeds 3] [--methods dann,self_training] [--epochs 20]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import BIRDS5, ROOT, setup

OFFICE = ROOT.parent / "shared" / "datasets" / "office_caltech"


def sketch_gap(work: Path) -> tuple[Path, Path]:
    """(photos, sketches): two disjoint halves of birds5 train, in class folders."""
    from PIL import Image, ImageFilter, ImageOps

    photos, sketches = work / "photos", work / "sketches"
    files = sorted((BIRDS5 / "train").glob("*/*.jpg"))
    order = np.random.default_rng(0).permutation(len(files))
    for rank, i in enumerate(order):
        src = files[i]
        dest = (photos if rank % 2 == 0 else sketches) / src.parent.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(src).convert("RGB")
        if rank % 2:
            image = ImageOps.invert(ImageOps.grayscale(image).filter(ImageFilter.FIND_EDGES)).convert("RGB")
        image.save(dest)
    return photos, sketches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default="dann,self_training")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    setup(work)
    from tlcore.runner import execute_run
    from tlcore.runs import RunConfig, RunStore

    gaps = {"office_caltech amazon → webcam": (OFFICE / "amazon", OFFICE / "webcam"),
            "birds5 photos → sketches": sketch_gap(work)}
    store = RunStore(work / "ws")       # one workspace: one feature pass per gap serves every method and seed
    out = []
    for gap, (source, target) in gaps.items():
        for method in args.methods.split(","):
            for seed in range(args.seeds):
                config = RunConfig(data=str(source), target_data=str(target), strategy="domain_adaptation",
                                   epochs=args.epochs, seed=seed, options={"method": method})
                run_id = store.create(config, "bench")
                assert execute_run(store, run_id).value == "done", store.get(run_id).error
                ev = json.loads((store.run_dir(run_id) / "evaluation.json").read_text())
                row = {"gap": gap, "method": method, "seed": seed, "target_accuracy": ev.get("target_accuracy"),
                       "source_only_target_accuracy": ev.get("source_only_target_accuracy")}
                out.append(row)
                print(json.dumps(row), flush=True)
    print("\n| gap | method | target accuracy (mean over seeds) | source-only | points gained |\n|---|---|---|---|---|")
    for gap in gaps:
        for method in args.methods.split(","):
            rows = [r for r in out if r["gap"] == gap and r["method"] == method]
            t = np.mean([r["target_accuracy"] for r in rows])
            s = np.mean([r["source_only_target_accuracy"] for r in rows])
            print(f"| {gap} | {method} | {t:.3f} | {s:.3f} | {100 * (t - s):+.1f} |")


if __name__ == "__main__":
    main()
