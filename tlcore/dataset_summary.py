"""A dataset for display: its counts per class and split, its report, and a few thumbnails per class."""
from __future__ import annotations

from typing import Any


def dataset_summary(dataset) -> dict:
    """Counts for display: per class and split, totals, the bad-file report and warnings."""
    rows = [{"class": c, "train": dataset.counts("train").get(c, 0), "validation": dataset.counts("val").get(c, 0),
             "test": dataset.counts("test").get(c, 0)} for c in dataset.classes]
    for row in rows:
        row["total"] = row["train"] + row["validation"] + row["test"]
    return {"classes": list(dataset.classes), "rows": rows, "n_images": len(dataset.samples),
            "skipped": [{"file": f, "reason": r} for f, r in dataset.report.skipped],
            "warnings": list(dataset.report.warnings), "tasks": dict(dataset.tasks), "source": dataset.source,
            "own_splits": dataset.own_splits, "small_classes": dict(dataset.report.small_classes)}


def thumbnails(dataset, per_class: int = 6, size: int = 96) -> dict[str, list[tuple[str, Any]]]:
    """A few small RGB thumbnails (uint8 arrays) per class, with the name each file came from."""
    from .images import thumbnail          # PIL and numpy: only when a page shows them

    out: dict[str, list[tuple[str, Any]]] = {}
    for label in dataset.classes:
        picks = [s for s in dataset.samples if s.label == label][:per_class]
        thumbs = [(s.name, thumbnail(s.path, size, s.name)) for s in picks]
        out[label] = [(name, image) for name, image in thumbs if image is not None]
    return out
