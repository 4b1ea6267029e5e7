"""The imported dataset: its samples (file, label, split), the import report, and ``dataset.json``.

No TensorFlow here.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "val", "val": "val",
                "validation": "val", "test": "test", "testing": "test"}
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
_JUNK = {"__macosx", "thumbs.db", "desktop.ini"}


@dataclass
class Sample:
    """One usable image: ``path`` is a file TensorFlow can decode; ``name`` is where it came from."""

    path: str
    label: str | None
    split: str | None
    name: str
    labels: dict[str, str | None] = field(default_factory=dict)


@dataclass
class DataReport:
    """What was left out (file, reason) and what the user should know."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    small_classes: dict[str, str] = field(default_factory=dict)   # class -> "train only" | "left out"


@dataclass
class Dataset:
    """An imported dataset; ``root`` is its workspace folder (``root/dataset.json``)."""

    root: Path
    classes: list[str]
    samples: list[Sample]
    report: DataReport
    tasks: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    own_splits: bool = True          # the images came in train/valid/test folders (kept as given)

    def split(self, name: str) -> list[Sample]:
        """The samples of one split ("train", "val"/"valid", "test")."""
        name = SPLIT_NAMES.get(name.lower(), name)
        return [s for s in self.samples if s.split == name]

    def counts(self, split: str | None = None) -> dict[str, int]:
        """Images per class (in ``classes`` order), for one split or all."""
        chosen = self.samples if split is None else self.split(split)
        tally = Counter(s.label for s in chosen)
        return {c: tally.get(c, 0) for c in self.classes}

    def label_index(self, sample: Sample) -> int:
        """The class index of a sample's label."""
        return self.classes.index(sample.label)

    def save(self) -> None:
        """Write ``root/dataset.json``; paths inside root are stored relative so the folder can move."""
        root = Path(self.root)

        def rel(path: str) -> str:
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                return str(path)

        doc = {"version": 1, "source": self.source, "classes": self.classes, "tasks": self.tasks,
               "own_splits": self.own_splits,
               "samples": [{"path": rel(s.path), "label": s.label, "split": s.split, "name": s.name,
                            "labels": s.labels} for s in self.samples],
               "report": {"skipped": [list(x) for x in self.report.skipped], "warnings": self.report.warnings,
                          "small_classes": self.report.small_classes}}
        tmp = root / "dataset.json.tmp"
        tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, root / "dataset.json")

    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        """Read a dataset saved by :meth:`save`."""
        root = Path(root).resolve()
        try:
            doc = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
            samples = [Sample(str(root / s["path"]) if not Path(s["path"]).is_absolute() else s["path"],
                              s["label"], s["split"], s["name"], dict(s.get("labels") or {})) for s in doc["samples"]]
            report = DataReport([tuple(x) for x in doc["report"]["skipped"]], list(doc["report"]["warnings"]),
                                dict(doc["report"].get("small_classes") or {}))
            return cls(root, list(doc["classes"]), samples, report, dict(doc.get("tasks") or {}), doc.get("source", ""),
                       bool(doc.get("own_splits", True)))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{root} holds no readable dataset.json; import the data again.") from err


@dataclass
class Entry:
    origin: str                     # what the user calls it: relative path, zip entry or CSV cell
    path: Path                      # the file on disk
    label: str | None = None
    split: str | None = None
    labels: dict[str, str | None] = field(default_factory=dict)
    owned: bool = False             # a copy inside dest that may be deleted


def is_junk(parts: tuple[str, ...]) -> bool:
    """True for hidden files and folders and the litter of macOS and Windows."""
    return any(p.startswith(".") or p.lower() in _JUNK for p in parts)


def plural(n: int, word: str) -> str:
    """``1 class``, ``2 classes``, ``3 files``."""
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("s") else "s")
