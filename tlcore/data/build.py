"""From files to a dataset: classes from the folder layout, decoding every image once, splitting and warnings."""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sklearn.model_selection import train_test_split

from .. import images
from ..errors import ConfigError, DataError, ImageError
from .dataset import SPLIT_NAMES, SPLIT_WORDS, DataReport, Dataset, Entry, Sample, plural

_WORKERS = max(2, min(4, os.cpu_count() or 2))   # PIL decodes outside the GIL; tiny files gain little


def check_shares(val: float, test: float) -> None:
    """ConfigError unless the validation and test shares are usable."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"The validation and test shares must be between 0 and 1 and add up to less than 1 "
                          f"(got {val} and {test}); choose smaller shares.")


def layout(items: list[tuple[tuple[str, ...], Path]], report: DataReport, unlabelled: bool,
           owned: bool = False) -> list[Entry]:
    """Classes (and own splits) from folder structure; unwraps up to five single wrapper folders."""
    def origin(parts: tuple[str, ...]) -> str:
        return "/".join(parts)

    if unlabelled:
        return [Entry(origin(p), path, owned=owned) for p, path in items]
    start = 0
    for _ in range(5):
        tops = {p[start] for p, _ in items if len(p) > start + 1}
        loose = any(len(p) == start + 1 for p, _ in items)
        deeper = any(len(p) > start + 2 for p, _ in items)
        if len(tops) != 1 or loose or not deeper or SPLIT_NAMES.get(next(iter(tops)).lower()):
            break
        start += 1
    own = any(len(p) > start + 2 and SPLIT_NAMES.get(p[start].lower()) == "train" for p, _ in items)
    entries = []
    for parts, path in items:
        rest = parts[start:]
        split = SPLIT_NAMES.get(rest[0].lower()) if own else None
        if own and (split is None or len(rest) < 3):
            reason = "outside the train/valid/test folders" if split is None else "not inside a class folder"
        elif not own and len(rest) < 2:
            reason = "not inside a class folder"
        else:
            entries.append(Entry(origin(parts), path, rest[1] if own else rest[0], split, owned=owned))
            continue
        report.skipped.append((origin(parts), reason))
        if owned:
            path.unlink(missing_ok=True)
    return entries


def _decode(entries: list[Entry], dest: Path, report: DataReport) -> list[tuple[Entry, str, str]]:
    """Decode every entry once (in a small thread pool); re-encode odd ones under ``dest/normalised``."""
    out_dir = dest / "normalised"
    out_dir.mkdir(exist_ok=True)

    def work(job: tuple[int, Entry]) -> tuple[Entry, str | None, str]:
        index, entry = job
        try:
            data = images.read_bytes(entry.path, entry.origin)
            digest = hashlib.sha1(data).hexdigest()
            target = out_dir / f"{index:06d}.png"
            info = images.inspect(data, name=entry.origin, normalise_to=target)
        except ImageError as err:
            return entry, None, err.reason
        except OSError:
            return entry, None, "the file cannot be read"
        if info.needs_normalising and entry.owned:
            entry.path.unlink(missing_ok=True)
        return entry, str(target if info.needs_normalising else entry.path.resolve()), digest

    kept = []
    with ThreadPoolExecutor(_WORKERS) as pool:
        for entry, path, digest_or_reason in pool.map(work, enumerate(entries)):
            if path is None:
                report.skipped.append((entry.origin, digest_or_reason))
                if entry.owned:
                    entry.path.unlink(missing_ok=True)
            else:
                kept.append((entry, path, digest_or_reason))
    return kept


SMALL_CLASS_CHOICES = ("train", "leave_out")


def check_small(small_classes: str) -> None:
    """ConfigError unless ``small_classes`` is one of :data:`SMALL_CLASS_CHOICES`."""
    if small_classes not in SMALL_CLASS_CHOICES:
        raise ConfigError(f"small_classes must be one of {', '.join(SMALL_CLASS_CHOICES)} (got {small_classes!r}).")


def build(entries: list[Entry], dest: Path, report: DataReport, source: str, *, val_split: float = 0.15,
          test_split: float = 0.15, seed: int = 0, unlabelled: bool = False,
          tasks: list[str] | None = None, small_classes: str = "train") -> Dataset:
    """Decode, check, split, warn and save. A class too small to split (``small_classes``): ``"train"`` keeps all
    its images in the training split, ``"leave_out"`` leaves it out; either way a warning names it."""
    check_small(small_classes)
    kept = _decode(entries, dest, report)
    samples = [Sample(path, e.label, e.split, e.origin, dict(e.labels)) for e, path, _ in kept]
    if unlabelled:
        if not samples:
            raise DataError(f"No usable images were found in {source}; {_skipped_hint(report)}")
        _warn_duplicates(kept, report, unlabelled=True)
        dataset = Dataset(dest, [], samples, report, {}, source)
        dataset.save()
        return dataset
    classes = sorted({s.label for s in samples})
    own_splits = any(s.split is not None for s in samples)
    _check_classes(classes, report)
    left_out = _split(samples, classes, val_split, test_split, seed, report, small_classes)
    if left_out:
        samples[:] = [s for s in samples if s.label not in left_out]
        kept = [k for k in kept if k[0].label not in left_out]
        classes = [c for c in classes if c not in left_out]
        if len(classes) < 2:
            raise DataError(f"Leaving out {_listing(sorted(repr(c) for c in left_out))} (too few images to split) "
                            f"leaves {plural(len(classes), 'class')}, and at least 2 are needed; add images to "
                            "the small classes, or train them with all their images in the training split.")
    _warn_duplicates(kept, report)
    tally = Counter(s.label for s in samples)
    big, small = max(classes, key=tally.get), min(classes, key=tally.get)
    if tally[big] > 3 * tally[small]:
        report.warnings.append(f"The classes are imbalanced: '{big}' has {tally[big]} images but '{small}' has "
                               f"{tally[small]}; add images of '{small}' or expect the model to favour '{big}'.")
    task_map = {t: sorted({s.labels[t] for s in samples if s.labels.get(t) is not None}) for t in tasks or []}
    dataset = Dataset(dest, classes, samples, report, task_map, source, own_splits)
    dataset.save()
    return dataset


def _check_classes(classes: list[str], report: DataReport) -> None:
    if len(classes) < 2:
        found = f" ({', '.join(repr(c) for c in classes)})" if classes else ""
        raise DataError(f"At least 2 classes are needed, but {plural(len(classes), 'class')} "
                        f"{'was' if len(classes) == 1 else 'were'} found{found}; put each class's images "
                        f"in its own folder. {_skipped_hint(report)}".strip())


def resplit(dataset: Dataset, val_split: float, test_split: float, seed: int = 0,
            small_classes: str = "train") -> Dataset:
    """Split a dataset's images again (stratified, seeded) and save it; refused for one that came with its own
    train/valid/test folders, whose split is the dataset author's."""
    if dataset.own_splits:
        raise DataError("This dataset came with its own train/valid/test folders, and that split is kept as "
                        "given; to split it differently, import the images without those folders.")
    if not dataset.classes:
        raise DataError("These images have no classes to split by.")
    check_shares(val_split, test_split)
    check_small(small_classes)
    for sample in dataset.samples:
        sample.split = None
    dataset.report.small_classes.clear()
    left_out = _split(dataset.samples, dataset.classes, val_split, test_split, seed, dataset.report, small_classes)
    if left_out:
        dataset.samples[:] = [s for s in dataset.samples if s.label not in left_out]
        dataset.classes = [c for c in dataset.classes if c not in left_out]
        _check_classes(dataset.classes, dataset.report)
    dataset.save()
    return dataset


def _skipped_hint(report: DataReport) -> str:
    if not report.skipped:
        return ""
    name, reason = report.skipped[0]
    return f"{plural(len(report.skipped), 'file')} could not be used (for example '{name}': {reason})."


def _split(samples: list[Sample], classes: list[str], val_split: float, test_split: float, seed: int,
           report: DataReport, small_classes: str = "train") -> set[str]:
    """Honour own split folders; carve missing splits from train per class (stratified, seeded). A class with
    too few images to split keeps them all in training, or is left out (``small_classes``); returns the classes
    left out."""
    own = any(s.split is not None for s in samples)
    for s in samples:
        s.split = s.split or "train"
    present = {s.split for s in samples}
    carve = [(sp, share) for sp, share in (("val", val_split), ("test", test_split)) if share > 0 and sp not in present]
    needed = 1 + len(carve)
    left_out: set[str] = set()
    for label in classes:
        pool = sorted((s for s in samples if s.label == label and s.split == "train"), key=lambda s: s.name)
        if len(pool) < needed:
            if _small_class(label, len(pool), needed, carve, own, small_classes, report):
                left_out.add(label)
            continue
        sizes = [max(1, round(len(pool) * share)) for _, share in carve]
        while len(pool) - sum(sizes) < 1:
            sizes[sizes.index(max(sizes))] -= 1
        rest = pool
        for (split, _), size in zip(carve, sizes):
            rest, taken = train_test_split(rest, test_size=size, random_state=seed, shuffle=True)
            for s in taken:
                s.split = split
    if own:
        for split in sorted(present - {"train"}):
            lacking = [c for c in classes if c not in left_out
                       and not any(s.label == c and s.split == split for s in samples)]
            if lacking:
                report.warnings.append(f"The {SPLIT_WORDS[split]} folder has no images of "
                                       f"{', '.join(repr(c) for c in lacking)}; add some so they can be measured.")
    return left_out


def _small_class(label: str, count: int, needed: int, carve: list, own: bool, choice: str,
                 report: DataReport) -> bool:
    """The small-class rule (docs/reliability.md): warn, and say whether the class is left out. A class with no
    training image at all cannot be trained, so it is left out whatever the choice."""
    words = [SPLIT_WORDS[sp] for sp in ["train"] + [c for c, _ in carve]]
    words = " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
    has = f"Class '{label}' has {plural(count, 'image')}{' for training' if own else ''}"
    fix = f"add more images of '{label}' and import again"
    if choice == "leave_out" or count == 0:
        report.warnings.append(f"{has}, fewer than the {needed} needed (one each for {words}), so it was left out; "
                               f"{fix} to train it.")
        report.small_classes[label] = "left out"
        return True
    report.warnings.append(f"{has}, fewer than the {needed} needed (one each for {words}), so all of them are used "
                           f"for training and it is not measured; {fix}, or leave it out.")
    report.small_classes[label] = "train only"
    return False


def _listing(items: list[str], limit: int = 3) -> str:
    """``'a', 'b' and 'c'``, or ``'a', 'b', 'c' and 4 more``: a few names the user can look for, then a count."""
    shown, rest = items[:limit], len(items) - limit
    if rest > 0:
        return ", ".join(shown) + f" and {rest} more"
    return " and ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else "".join(shown)


def _warn_duplicates(kept: list[tuple[Entry, str, str]], report: DataReport, unlabelled: bool = False) -> None:
    """Warn about byte-identical images, naming the files so the user can find and remove the copies."""
    by_hash: dict[str, list[Entry]] = defaultdict(list)
    for entry, _, digest in kept:
        by_hash[digest].append(entry)
    groups = [sorted(g, key=lambda e: e.origin) for g in by_hash.values() if len(g) > 1]
    groups.sort(key=lambda g: g[0].origin)
    cross = [g for g in groups if len({e.label for e in g}) > 1]
    for group in cross[:5]:
        where = " and ".join(f"'{e.origin}' (class '{e.label}')" for e in group[:3])
        report.warnings.append(f"The same image is in two classes: {where}; it leaks between splits and "
                               "confuses training, so keep only the right copy.")
    if len(cross) > 5:
        pairs = ["(" + ", ".join(f"'{e.origin}'" for e in g[:2]) + ")" for g in cross[5:]]
        report.warnings.append(f"{len(cross) - 5} more images are in two classes ({_listing(pairs)}); remove the "
                               "wrong copies.")
    within = [g for g in groups if g not in cross]
    if within:
        copies = ["(" + ", ".join(f"'{e.origin}'" for e in g[:3]) + (f" and {len(g) - 3} more" if len(g) > 3
                                                                  else "") + ")" for g in within]
        where, harm = (("among these images", "Each copy counts again") if unlabelled else
                       ("in the same class", "Copies can leak between splits and flatter the test score"))
        report.warnings.append(f"{plural(len(within), 'image')} {'appears' if len(within) == 1 else 'appear'} "
                               f"more than once {where}: {_listing(copies)}. {harm}, so remove the duplicates.")
