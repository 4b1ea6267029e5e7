"""The automatic search against a 20-setting grid on birds5 (issue 15's regret figure; docs/strategies.md).

Every run is a real run of the app (MobileNet α=0.25 ImageNet at 224 px, one workspace, so one feature pass
serves them all). The grid: hidden units {none, 256, 1024} × learning rate {3e-4, 1e-3, 3e-3} × dropout {0.2, 0.5}
with Adam, plus RMSprop at 1e-3 with 256 and 1024 units: 20 feature-extraction runs of 20 epochs with early
stopping. Regret = the best grid run's test accuracy − the ``auto`` run's, on the same split (points).

    .venv/bin/python benchmarks/bench_auto.py [--budget 60] [--seeds 1]
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from _common import BIRDS5, setup


def grid() -> list[dict]:
    rows = [{"head": {"enabled": units > 0, "units": units or 256, "dropout": drop}, "learning_rate": lr,
             "optimizer": "adam"} for units, lr, drop in itertools.product((0, 256, 1024), (3e-4, 1e-3, 3e-3), (0.2, 0.5))]
    rows += [{"head": {"enabled": True, "units": units, "dropout": 0.2}, "learning_rate": 1e-3, "optimizer": "rmsprop"}
             for units in (256, 1024)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-auto-"))
    setup(work)
    from tlcore.runner import execute_run
    from tlcore.runs import RunConfig, RunStore

    store = RunStore(work / "ws")

    def run(**kw) -> dict:
        run_id = store.create(RunConfig(data=str(BIRDS5), **kw), "bench")
        assert execute_run(store, run_id).value == "done", store.get(run_id).error
        ev = json.loads((store.run_dir(run_id) / "evaluation.json").read_text())
        return {"accuracy": ev["accuracy"], "run_dir": str(store.run_dir(run_id))}

    out = []
    for seed in range(args.seeds):
        autos = run(strategy="auto", seed=seed, options={"budget_s": args.budget})
        search = json.loads((Path(autos["run_dir"]) / "search.json").read_text())
        grid_scores = [run(strategy="feature_extraction", epochs=20, early_stopping=3, seed=seed, **g)["accuracy"]
                       for g in grid()]
        row = {"seed": seed, "auto": autos["accuracy"], "grid_best": max(grid_scores),
               "grid_median": sorted(grid_scores)[len(grid_scores) // 2],
               "regret_points": 100 * (max(grid_scores) - autos["accuracy"]), "trials": len(search["trials"]),
               "best": search["best"], "scoring": search["scoring"]}
        out.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
