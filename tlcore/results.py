"""Finished runs for display: their saved evaluation and a side-by-side comparison.

No streamlit and no TensorFlow (evaluation and embeddings themselves live in tlcore.evaluate / tlcore.embed).
"""
from __future__ import annotations

from pathlib import Path

from .artifacts import read_json as load_json  # the one JSON reader (load_json: its old name here)
from .catalog import CATALOG
from .errors import TLError
from .progress import curves, duration_text
from .runs import RunStore

FREEZE_WORDS = {"all": "whole backbone frozen", "none": "nothing frozen"}
CHANCE_MARGIN = 0.05          # within 5 points of 1/classes counts as "at chance"
PENDING_WORDS = {"queued": "queued", "running": "training"}
WEIGHT_WORDS = {"imagenet": "ImageNet", "none": "random", "file": "your file"}


def load_evaluation(run_dir: str | Path) -> dict | None:
    """The run's ``evaluation.json`` (written when training ends), or None."""
    return load_json(Path(run_dir) / "evaluation.json")


def load_parity(run_dir: str | Path) -> dict | None:
    return load_json(Path(run_dir) / "parity.json")


def freeze_text(config) -> str:
    """What stayed frozen, in words, for a run config: the frozen-layer setting only for a strategy that uses it
    (the catalog's ``uses_freeze``); the others keep the whole backbone frozen, or train it all from random."""
    found = CATALOG.get(config.strategy)
    if found is not None and not found.pretrained:
        return FREEZE_WORDS["none"] + " (random start)"
    if found is not None and not found.uses_freeze:
        return FREEZE_WORDS["all"]
    freeze = config.freeze
    if freeze.mode == "all_but_top":
        return f"top {freeze.n} layers trainable"
    if freeze.mode == "first_n":
        return f"first {freeze.n} layers frozen"
    if freeze.mode == "up_to":
        return f"frozen up to {freeze.layer}"
    return FREEZE_WORDS.get(freeze.mode, str(freeze.mode))


def chance_verdict(accuracy: float | None, n_classes: int | None, *, weights: str = "imagenet",
                   strategy: str = "feature_extraction", n_train: int | None = None,
                   which: str = "test") -> str | None:
    """A plain warning when a model ends at or near chance (accuracy within 5 points of 1/classes, or below),
    naming the likely cause and the fix; None when it learned something, or when there is nothing to judge."""
    if accuracy is None or not n_classes or n_classes < 2:
        return None
    try:
        accuracy = float(accuracy)
    except (TypeError, ValueError):
        return None
    if accuracy != accuracy:                          # NaN
        return None
    chance = 1.0 / n_classes
    if accuracy > chance + CHANCE_MARGIN:
        return None
    head = (f"The model is no better than guessing: {accuracy:.0%} on the {which} images, where picking one of the "
            f"{n_classes} classes at random gives {chance:.0%}.")
    images = f" on {n_train} training images" if n_train else ""
    random_start = strategy in CATALOG and not CATALOG[strategy].pretrained      # e.g. training from scratch
    if random_start or weights == "none":
        cause = (f" Likely cause: it started from random weights (no pretraining){images}, which is far too few "
                 "images to learn from scratch." if random_start else
                 " Likely cause: the backbone started from random weights (no pretraining), so the features it "
                 "passes to the new head say little about your images.")
        fix = (" Fix: on the Model page choose ImageNet (pretrained) weights, and on the Train page choose feature "
               "extraction; or train longer and add more images per class.")
    else:
        cause = (" Likely cause: too few epochs, a learning rate too high for these images, or classes that look "
                 "alike (or wrong labels).")
        fix = (" Fix: train for more epochs, try a lower learning rate, add more images per class and check that "
               "each folder holds the right class.")
    return head + cause + fix


def final_accuracy(metrics: dict, epochs: list[dict]) -> tuple[float | None, str]:
    """The run's final accuracy and where it was measured: the test images, else the last validation epoch."""
    if metrics.get("accuracy") is not None:
        return metrics["accuracy"], "test"
    for row in reversed(epochs or []):
        if row.get("val_accuracy") is not None:
            return row["val_accuracy"], "validation"
    return None, "test"


def compare_runs(store: RunStore, owner: str) -> list[dict]:
    """One row per run this owner may see: strategy, backbone, weights, frozen layers, accuracy, time."""
    rows = []
    for record in store.list(owner=owner):
        try:
            config = store.config(record.id)
        except TLError:
            continue
        metrics = record.metrics or {}
        rows.append({
            "run": record.id, "name": record.name, "state": record.state.value,
            "strategy": config.strategy, "backbone": "custom" if config.backbone_file else config.backbone,
            "weights": WEIGHT_WORDS[config.weights if config.weights in ("imagenet", "none") else "file"],
            "image size": config.image_size, "frozen": freeze_text(config),
            "accuracy": metrics.get("accuracy"), "macro F1": metrics.get("macro_f1"),
            "epochs": metrics.get("epochs"), "trainable params": metrics.get("trainable_params"),
            "time": duration_text(record.duration) if record.state.finished else "",
            "seconds": round(record.duration, 1) if record.duration and record.state.finished else None,
            "shared": record.shared, "mine": record.owner == owner, "group": config.group,
        })
    return rows


def table_rows(rows: list[dict]) -> list[dict]:
    """``compare_runs`` rows for display: numbers as text, and "queued" / "training" (or "—" for a run that ended
    without a result) in the result cells of runs that have none yet, so no cell reads "None"."""
    out = []
    for row in rows:
        pending = PENDING_WORDS.get(row["state"], "—")
        shown = dict(row)
        for key, fmt in (("accuracy", "{:.1%}"), ("macro F1", "{:.2f}"), ("epochs", "{:d}"),
                         ("trainable params", "{:,}")):
            value = row.get(key)
            shown[key] = pending if value is None else fmt.format(int(value) if fmt in ("{:d}", "{:,}") else value)
        shown["time"] = row.get("time") or pending
        out.append(shown)
    return out


def per_class_f1(store: RunStore, run_ids: list[str]) -> list[dict]:
    """F1 of each class (rows) in each run (columns keyed by run id), from the runs' saved evaluations."""
    table: dict[str, dict] = {}
    for run_id in run_ids:
        for row in (load_evaluation(store.run_dir(run_id)) or {}).get("per_class") or []:
            table.setdefault(str(row.get("class")), {"class": str(row.get("class"))})[run_id] = row.get("f1")
    return list(table.values())


def compare_curves(store: RunStore, run_ids: list[str]) -> list[dict]:
    """Per-epoch rows (run, epoch, metric, value) of several runs, for overlaid curves."""
    return curves({run_id: store.read_events(run_id) for run_id in run_ids})
