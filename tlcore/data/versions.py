"""A new version of a dataset from fixes: images removed, moved to another class, classes merged or left out,
and optionally split again. The old version is never changed; the new one gets its own folder, whose files are
hard links to the old one's (copies where links cannot be made), so deleting either leaves the other whole."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .build import _listing, _split, check_shares
from .dataset import DataReport, Dataset, Sample, plural


@dataclass
class Fixes:
    """What to change. Images are named by their source name (``Sample.name``), classes by their name."""

    remove: list[str] = field(default_factory=list)              # images to leave out
    relabel: dict[str, str] = field(default_factory=dict)        # image -> its new class
    merge: dict[str, str] = field(default_factory=dict)          # class -> the class it joins
    leave_out: list[str] = field(default_factory=list)           # classes to leave out
    resplit: tuple[float, float] | None = None                   # (validation, test) shares to split again with

    def empty(self) -> bool:
        return not (self.remove or self.relabel or self.merge or self.leave_out or self.resplit)


def describe(fixes: Fixes, removed: int, relabelled: int) -> str:
    """What changed, in words: "14 images removed, 3 relabelled, 'cat' merged into 'Cat', split again"."""
    parts = []
    if removed:
        parts.append(f"{plural(removed, 'image')} removed")
    if relabelled:
        parts.append(f"{relabelled} relabelled")
    parts += [f"'{a}' merged into '{b}'" for a, b in fixes.merge.items()]
    if fixes.leave_out:
        parts.append(f"{_listing([repr(c) for c in fixes.leave_out])} left out")
    if fixes.resplit:
        parts.append(f"split again ({fixes.resplit[0]:.0%} validation, {fixes.resplit[1]:.0%} test)")
    return ", ".join(parts) or "no change"


def _check(dataset: Dataset, fixes: Fixes) -> None:
    names = {s.name for s in dataset.samples}
    unknown = [n for n in list(fixes.remove) + list(fixes.relabel) if n not in names]
    if unknown:
        raise DataError(f"{_listing([repr(n) for n in unknown])} {'is' if len(unknown) == 1 else 'are'} not in this "
                        "dataset; check the data again and choose from what it shows.")
    classes = set(dataset.classes)
    bad = [c for c in list(fixes.merge) + list(fixes.merge.values()) + list(fixes.leave_out) +
           list(fixes.relabel.values()) if c not in classes]
    if bad:
        raise DataError(f"There is no class {_listing([repr(c) for c in bad])} in this dataset; choose one of "
                        f"{_listing([repr(c) for c in dataset.classes], 8)}.")
    loops = [a for a, b in fixes.merge.items() if a == b or b in fixes.merge]
    if loops:
        raise DataError(f"'{loops[0]}' cannot be merged into a class that is itself merged away; merge each class "
                        "into one that stays.")
    if fixes.resplit:
        if dataset.own_splits:
            raise DataError("This dataset came with its own train/valid/test folders, and that split is kept as "
                            "given; fix the images without splitting again.")
        check_shares(*fixes.resplit)


def _link(path: str, old_root: Path, new_root: Path) -> str:
    """The file's path in the new version: a hard link (or copy) of a file inside the old folder, else as is."""
    src = Path(path)
    try:
        rel = src.resolve().relative_to(old_root.resolve())
    except ValueError:
        return path                               # a folder imported in place: the files stay where they are
    target = new_root / rel
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
    return str(target)


def derive(dataset: Dataset, dest: str | Path, fixes: Fixes, *, seed: int = 0) -> tuple[Dataset, str]:
    """The dataset with ``fixes`` applied, saved in ``dest`` (a new, empty folder), and what changed in words."""
    _check(dataset, fixes)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    drop, left = set(fixes.remove), set(fixes.leave_out)
    samples, relabelled = [], 0
    for s in dataset.samples:
        if s.name in drop or s.label in left:
            continue
        label = fixes.relabel.get(s.name, s.label)
        label = fixes.merge.get(label, label)
        relabelled += int(s.name in fixes.relabel and label != s.label)
        samples.append(Sample(s.path, label, s.split, s.name, dict(s.labels)))
    removed = sum(1 for s in dataset.samples if s.name in drop and s.label not in left)   # left-out classes: named
    classes = sorted({s.label for s in samples})
    if len(classes) < 2:
        raise DataError(f"These fixes would leave {plural(len(classes), 'class')}, and at least 2 are needed; keep "
                        "more images or classes.")
    report = DataReport(list(dataset.report.skipped), [], dict(dataset.report.small_classes))
    for label in list(report.small_classes):
        if label not in classes:
            report.small_classes.pop(label)
    if fixes.resplit:
        for s in samples:
            s.split = None
        left_out = _split(samples, classes, fixes.resplit[0], fixes.resplit[1], seed, report)
        if left_out:
            samples = [s for s in samples if s.label not in left_out]
            classes = [c for c in classes if c not in left_out]
    else:
        for label in classes:
            if not any(s.label == label and s.split == "train" for s in samples):
                raise DataError(f"Class '{label}' would have no training image left; keep one, or split again.")
    for s in samples:
        s.path = _link(s.path, Path(dataset.root), dest)
    new = Dataset(dest, classes, samples, report, dict(dataset.tasks), dataset.source, dataset.own_splits)
    new.save()
    return new, describe(fixes, removed, relabelled)
