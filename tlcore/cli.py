"""``python -m tlcore``: the same engine as the app, headless. This command-line contract is stable."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from .catalog import LINES, TITLES
from .errors import TLError
from .export_formats import ALIASES, EXPORT_FORMATS

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m tlcore", description="Transfer Learning Studio from the command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("backbones", help="List the pretrained backbones.")
    b.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    t = sub.add_parser("train", help="Train a model; prints the run folder as its last line.",
                       epilog=strategies_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _run_arguments(t)
    t.add_argument("--strategy", help="One of the strategies listed below. Default: auto (a search of the head's settings).")
    t.add_argument("--workers", type=int, help="Train this run over N Ray workers (TLS_RAY_ADDRESS). Default: 1.")

    c = sub.add_parser("compare", help="Train several strategies/backbones on the same split and seed, one after "
                                       "another, and print them side by side.",
                       epilog=strategies_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _run_arguments(c)
    c.add_argument("--strategies", help="Comma-separated strategies. Default: the config's strategy and scratch.")
    c.add_argument("--backbones", help="Comma-separated backbones. Default: the config's backbone.")
    c.add_argument("--freezes", help="Frozen-layer settings for fine_tune, comma-separated: top10, top20, top50, "
                                     "none. Default: the config's.")
    c.add_argument("--json", action="store_true", help="Print the comparison as JSON.")

    e = sub.add_parser("evaluate", help="Evaluate a run on its test split or on other data.")
    e.add_argument("run", metavar="RUN", help="A run folder or run id.")
    e.add_argument("--data", help="Evaluate on this data instead of the run's test split.")
    e.add_argument("--json", action="store_true", help="Print one JSON object.")
    e.add_argument("--tta", action="store_true", help="Average each image with its mirror image (test-time "
                                                      "augmentation; off by default).")
    e.add_argument("--workspace")

    r = sub.add_parser("predict", help="Predict the classes of images.")
    r.add_argument("run", metavar="RUN", help="A run folder or run id.")
    r.add_argument("images", metavar="IMAGE", nargs="+", help="Image files.")
    r.add_argument("--top-k", type=int, default=3, help="How many classes to show per image (default 3).")
    r.add_argument("--json", action="store_true", help="Print JSON.")
    r.add_argument("--tta", action="store_true", help="Average each image with its mirror image.")
    r.add_argument("--workspace")

    x = sub.add_parser("export", help="Export a trained model.")
    x.add_argument("run", metavar="RUN", help="A run folder or run id.")
    x.add_argument("--format", required=True, choices=[*EXPORT_FORMATS, *ALIASES, "all"],
                   help="One format, or all: every format, checked for parity, in one zip (bundle.zip).")
    x.add_argument("--out", required=True, help="Output folder.")
    x.add_argument("--workspace")

    v = sub.add_parser("serve", help="Serve a run's model over HTTP (TF Serving's REST format, image files, "
                                     "/healthz) for a classroom; see docs/deploy.md.")
    v.add_argument("run", metavar="RUN", help="A run folder or run id.")
    v.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1: this machine only).")
    v.add_argument("--port", type=int, default=8080, help="Port (default 8080).")
    v.add_argument("--max-mb", type=float, default=20, help="Largest request body in MB (default 20).")
    v.add_argument("--workspace")

    ls = sub.add_parser("runs", help="List the runs in the workspace.")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--workspace")

    s = sub.add_parser("sample", help="Write the built-in synthetic sample dataset to a folder.")
    s.add_argument("out", help="Folder to create.")

    a = sub.add_parser("audit", help="Check a dataset: likely label errors, duplicates, near-duplicates, leaks "
                                     "between splits, outliers and clashing class names.",
                       description="Check a dataset: likely label errors, duplicates, near-duplicates, leaks between "
                                   "splits, outliers and clashing class names (docs/data-check.md).")
    a.add_argument("--data", required=True, help="A zip of class folders, a folder, or a CSV of path,label.")
    a.add_argument("--json", action="store_true", help="Print one JSON object.")
    a.add_argument("--backbone", default="mobilenet_025", help="Backbone whose features are compared "
                                                               "(default mobilenet_025).")
    a.add_argument("--workspace", help="Whose feature store to reuse. Default: $TLS_WORKSPACE or ~/.tlstudio.")
    return p


# One line per strategy for --help, from the catalog (tlcore.strategies imports TensorFlow; --help stays fast).
STRATEGY_LINES = LINES


def strategies_help() -> str:
    """The strategies, one line each (name, title, what it does), for the train/compare --help."""
    width = max(map(len, STRATEGY_LINES))
    return "strategies (--strategy):\n" + "\n".join(
        f"  {name:{width}}  {TITLES[name]}: {line}." for name, line in STRATEGY_LINES.items())


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="A zip of class folders, a folder, or a CSV of path,label.")
    p.add_argument("--backbone", help="Backbone name (see `backbones`). Default: mobilenet_025.")
    p.add_argument("--weights", help="imagenet (default), none (random initialisation) or a .h5 weights file.")
    p.add_argument("--epochs", type=int, help="Training epochs (the head's epochs for fine_tune).")
    p.add_argument("--target-data", help="Unlabelled target images (domain adaptation).")
    p.add_argument("--config", help="A run config JSON (as saved by the app); flags override it.")
    p.add_argument("--workspace", help="Where runs are stored. Default: $TLS_WORKSPACE or ~/.tlstudio.")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _store(args):
    from .runs import RunStore
    from .settings import workspace_dir

    return RunStore(Path(args.workspace).expanduser() if getattr(args, "workspace", None) else workspace_dir())


def run_folder(args) -> Path:
    """RUN may be a run folder or a run id in the workspace."""
    from .errors import RunError

    path = Path(args.run).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RunError(f"{path} is not a run folder (it has no config.json): pass a run folder or a run id.")
        return path
    store = _store(args)
    return store.run_dir(store.resolve(args.run))


def cmd_backbones(args) -> int:
    from .backbones import backbone_table

    rows = backbone_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':18} {'backbone':18} {'params(M)':>9} {'size':>5} {'top-1':>6}  cached")
    for r in rows:
        print(f"{r['name']:18} {r['backbone']:18} {r['parameters (M)']:>9} {r['input size']:>5} "
              f"{r['ImageNet top-1 (%)']:>6}  {'yes' if r['ImageNet weights cached'] else 'no'}")
    return 0


def config_from_args(args):
    """The run config of ``--config`` with the command-line flags laid over it; the cheap checks done."""
    from .backbones import get_spec
    from .runs import RunConfig

    config = RunConfig.load(args.config) if args.config else RunConfig()
    overrides = {"data": args.data, "backbone": args.backbone, "strategy": getattr(args, "strategy", None),
                 "weights": args.weights, "epochs": args.epochs, "target_data": args.target_data,
                 "workers": getattr(args, "workers", None)}
    merged = {**config.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    config = RunConfig.from_dict(merged)
    if not config.data:
        raise TLError("No data given: pass --data PATH (a zip, a folder of class folders, or a CSV).")
    for source in (config.data, config.target_data):
        if source and not source.startswith("dataset:") and not Path(source).expanduser().exists():
            raise TLError(f"{source} does not exist: pass a zip, a folder of class folders, or a CSV.")
    if not config.backbone_file:
        get_spec(config.backbone)
    return config


def _train(manager, run_ids: list[str], quiet: bool) -> list:
    """Follow queued runs to their end (Ctrl+C stops them all); returns their final records."""
    previous = signal.signal(signal.SIGINT, lambda *_: [manager.stop(r) for r in run_ids])
    try:
        for run_id in run_ids:
            _follow(manager, run_id, quiet=quiet)
    finally:
        signal.signal(signal.SIGINT, previous)
    records = [manager.store.get(r) for r in run_ids]
    for record in records:
        if record.error and record.state.value != "done":
            print(f"error: {record.name}: {record.error}", file=sys.stderr)
    return records


def cmd_train(args) -> int:
    from .jobs import JobManager

    config = config_from_args(args)
    from .catalog import entry

    entry(config.strategy)          # an unknown strategy is named now; TensorFlow loads in the training process
    manager = JobManager(_store(args), max_concurrent=1, warm=0)       # one run: no spare process to keep ready
    [record] = _train(manager, [manager.submit(config, owner="cli")], args.quiet)
    if record.metrics.get("accuracy") is not None:
        print(f"test accuracy: {record.metrics['accuracy']:.3f}", file=sys.stderr)
    if record.metrics.get("chance_warning"):
        print(record.metrics["chance_warning"], file=sys.stderr)
    print(manager.store.run_dir(record.id))
    return 0 if record.state.value in ("done", "stopped") else EXIT_RUN_FAILED


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_compare(args) -> int:
    from . import compare
    from .jobs import JobManager
    from .results import compare_runs

    base = config_from_args(args)
    freezes = _names(args.freezes)
    bad = [f for f in freezes or [] if f not in compare.FREEZE_FLAGS]
    if bad:
        raise TLError(f"Unknown --freezes value '{bad[0]}'. Choose from: {', '.join(compare.FREEZE_FLAGS)}.")
    strategies = _names(args.strategies) or list(dict.fromkeys([base.strategy, compare.BASELINE]))
    configs = compare.plan(base, strategies, _names(args.backbones), [compare.FREEZE_FLAGS[f] for f in freezes or []])
    manager = JobManager(_store(args), max_concurrent=1)
    ids = compare.submit(manager, configs, "cli")
    records = _train(manager, ids, args.quiet)
    rows = [r for r in compare_runs(manager.store, "cli") if r["run"] in ids][::-1]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(f"{'run':58} {'state':8} {'accuracy':>8} {'macro F1':>8} {'trainable':>10} {'time':>8}")
        for row in rows:
            acc = "" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
            f1 = "" if row["macro F1"] is None else f"{row['macro F1']:.3f}"
            print(f"{row['name'][:58]:58} {row['state']:8} {acc:>8} {f1:>8} {row['trainable params'] or '':>10} "
                  f"{row['time']:>8}")
    return 0 if all(r.state.value in ("done", "stopped") for r in records) else EXIT_RUN_FAILED


def _follow(manager, run_id: str, quiet: bool):
    """Show a progress bar from the run's events until it ends."""
    seen, line = 0, ""
    while True:
        state = manager.wait(run_id, timeout=0.5)
        events = manager.store.read_events(run_id, after=seen)
        seen += len(events)
        for ev in events:
            if quiet:
                continue
            text = _progress_text(ev)
            if text:
                line = text
                print("\r" + line.ljust(100)[:100], end="", file=sys.stderr, flush=True)
            if ev["type"] in ("epoch", "warning", "phase"):
                msg = _epoch_text(ev)
                if msg:
                    print("\r" + msg.ljust(100), file=sys.stderr, flush=True)
        if state.finished:
            if not quiet and line:
                print(file=sys.stderr)
            return state


def _bar(fraction: float, width: int = 30) -> str:
    filled = int(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _progress_text(ev: dict) -> str:
    if ev["type"] == "progress" and ev.get("total"):
        return f"features {ev.get('split')} {_bar(ev['done'] / ev['total'])} {ev['done']}/{ev['total']}"
    if ev["type"] == "batch" and ev.get("steps"):
        eta = f" ETA {ev['eta']:.0f}s" if ev.get("eta") is not None else ""
        return (f"{ev['phase']} epoch {ev['epoch']} {_bar(ev['batch'] / ev['steps'])} "
                f"loss {ev['loss']:.4f}{eta}")
    return ""


def _epoch_text(ev: dict) -> str:
    if ev["type"] == "warning":
        return f"warning: {ev.get('message')}"
    if ev["type"] == "phase" and ev.get("message"):
        return ev["message"]
    if ev["type"] == "epoch":
        parts = [f"{k} {ev[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if ev.get(k) is not None]
        return f"{ev['phase']} epoch {ev['epoch']}/{ev['total_epochs']}: " + ", ".join(parts)
    return ""


def cmd_evaluate(args) -> int:
    folder = run_folder(args)               # a wrong id is named before TensorFlow loads
    from .evaluate import evaluate_run

    result = evaluate_run(folder, data=args.data, tta=args.tta)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return 0
    print(f"accuracy: {result.get('accuracy', 0):.4f} on {result.get('n', 0)} images")
    for row in result.get("per_class", []):
        print(f"  {row['class']}: precision {row['precision']:.3f}, recall {row['recall']:.3f}, "
              f"f1 {row['f1']:.3f} ({row['support']} images)")
    return 0


def cmd_predict(args) -> int:
    if args.top_k < 1:
        raise TLError("--top-k must be 1 or more.")
    folder = run_folder(args)               # a wrong id is named before TensorFlow loads
    from .predict import Predictor, prediction_records

    predictor = Predictor.from_run(folder)
    predictor.tta = bool(args.tta)
    for image in args.images:
        if not Path(image).is_file():
            raise TLError(f"{image} does not exist: pass the path of an image file.")
    records = prediction_records(predictor, list(args.images), top_k=args.top_k)
    if args.json:
        print(json.dumps(records, ensure_ascii=False))
        return 0
    for row in records:
        for task, top in (row.get("tasks") or {"": row["top"]}).items():   # multi-task: one line per label column
            print(f"{row['image']}{f' [{task}]' if task else ''}: "
                  + ", ".join(f"{t['class']} ({t['probability']:.1%})" for t in top))
    return 0


def cmd_export(args) -> int:
    run = run_folder(args)   # before TensorFlow loads: a wrong RUN is answered at once
    if args.format == "all":
        from .bundle import export_bundle

        print(export_bundle(run, Path(args.out)))
        return 0
    from .export import export_run

    print(export_run(run, args.format, Path(args.out)))
    return 0


def cmd_serve(args) -> int:
    run = run_folder(args)   # before TensorFlow loads: a wrong RUN is answered at once
    if not 0 < args.port < 65536:
        raise TLError(f"--port {args.port} is not a port: choose one from 1 to 65535, such as 8080.")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this address can use the model.",
              file=sys.stderr)
    from .serve import serve

    serve(run, host=args.host, port=args.port, max_mb=args.max_mb)
    return 0


def cmd_runs(args) -> int:
    records = _store(args).list()
    if args.json:
        print(json.dumps([{"id": r.id, "state": r.state.value, "strategy": r.strategy, "backbone": r.backbone,
                           "metrics": r.metrics, "error": r.error} for r in records], ensure_ascii=False))
        return 0
    for r in records:
        acc = r.metrics.get("accuracy")
        print(f"{r.id}  {r.state.value:11} {r.strategy:20} {r.backbone:16} "
              f"{'' if acc is None else f'accuracy {acc:.3f}'}")
    return 0


def cmd_sample(args) -> int:
    from .sample import make_sample

    print(make_sample(Path(args.out)))
    return 0


def cmd_audit(args) -> int:
    from .audit import AuditOptions, audit_text
    from .audit_jobs import audit_source
    from .backbones import get_spec

    get_spec(args.backbone)                      # an unknown name: ConfigError listing the valid ones
    result = audit_source(args.data, workspace=Path(args.workspace).expanduser() if args.workspace else None,
                          options=AuditOptions(backbone=args.backbone))
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else audit_text(result))
    return 0


COMMANDS = {"audit": cmd_audit,
            "backbones": cmd_backbones, "train": cmd_train, "compare": cmd_compare, "evaluate": cmd_evaluate,
            "predict": cmd_predict, "export": cmd_export, "runs": cmd_runs, "sample": cmd_sample,
            "serve": cmd_serve}
