"""Calibration and "not one of my classes" on real data (issue 15; docs/strategies.md quotes the figures).

1. ECE (15 bins) on the test split before and after temperature scaling, for a feature-extraction run (app
   defaults, MobileNet α=0.25 ImageNet at 224 px) on birds5 and on office_caltech amazon; and the same test split
   with test-time augmentation (the mirror image averaged in).
2. Out-of-distribution AUROC of the birds5 model: its ``ood_score`` on birds5's test birds against photos of other
   things (office_caltech's amazon and webcam objects, none of them birds).

    .venv/bin/python benchmarks/bench_confidence.py [--ood-images 300] [--seeds 1]

KERAS_HOME defaults to a temporary copy of ../shared/keras_home (the real ImageNet weights).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import BIRDS5, ROOT, setup

OFFICE = ROOT.parent / "shared" / "datasets" / "office_caltech"


def train(work: Path, data: Path, seed: int) -> Path:
    from tlcore.runner import execute_run
    from tlcore.runs import RunConfig, RunStore

    store = RunStore(work / f"ws-{data.name}-{seed}")
    run_id = store.create(RunConfig(data=str(data), seed=seed, strategy="feature_extraction"), "bench")
    state = execute_run(store, run_id)
    assert state.value == "done", store.get(run_id).error
    return store.run_dir(run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ood-images", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-confidence-"))
    setup(work)
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from tlcore.evaluate import evaluate_run
    from tlcore.predict import Predictor

    out: dict = {"ece": {}, "ood": {}}
    for name, data in (("birds5", BIRDS5), ("office_caltech amazon", OFFICE / "amazon")):
        rows = []
        for seed in range(args.seeds):
            run_dir = train(work, data, seed)
            ev = json.loads((run_dir / "evaluation.json").read_text())
            row = {k: ev.get(k) for k in ("accuracy", "ece", "ece_uncalibrated", "temperature", "n")}
            tta = evaluate_run(run_dir, tta=True)            # test-time augmentation: the mirror image averaged in
            row.update(tta_accuracy=tta["accuracy"], tta_ece=tta["ece"])
            rows.append(row)
            if name == "birds5" and seed == 0:
                birds_run = run_dir
        out["ece"][name] = rows
        print(name, rows, flush=True)
    predictor = Predictor.from_run(birds_run)
    birds = sorted(str(p) for p in (BIRDS5 / "test").rglob("*.jpg"))
    others = sorted(str(p) for p in OFFICE.rglob("*.jpg"))
    rng = np.random.default_rng(0)
    others = list(rng.choice(others, size=min(args.ood_images, len(others)), replace=False))
    _, ood_in, status_in, _ = predictor.assess(birds)
    _, ood_out, status_out, _ = predictor.assess(others)
    auroc = roc_auc_score([0] * len(ood_in) + [1] * len(ood_out), np.concatenate([ood_in, ood_out]))
    out["ood"] = {"auroc": float(auroc), "birds": len(birds), "others": len(others),
                  "birds_called_unknown": status_in.count("unknown") / len(status_in),
                  "others_called_unknown": status_out.count("unknown") / len(status_out),
                  "threshold": predictor.confidence.ood_threshold}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
