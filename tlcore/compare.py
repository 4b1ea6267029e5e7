"""Comparisons: one click queues several runs that differ only in strategy, backbone or frozen layers, on the same
data, split and seed, so their results can be set side by side (the classroom demonstration of what transfer buys).

No TensorFlow here: the strategy facts come from the catalog (tlcore.catalog).
"""
from __future__ import annotations

import secrets
from typing import Sequence

from . import catalog
from .backbones import get_spec, resolve_size, weights_cached
from .catalog import TITLES  # noqa: F401 - {name: title}, a live view of the catalog (older imports)
from .config import RunConfig
from .dataset_store import dataset_id_of, dataset_versions
from .errors import ConfigError, TLError
from .results import freeze_text, load_evaluation

MAX_RUNS = 12
BASELINE = "scratch"
# Frozen-layer settings offered for fine-tuning comparisons: label → RunConfig.freeze.
FREEZE_CHOICES = {
    "Top 10 layers trainable": {"mode": "all_but_top", "n": 10, "layer": None},
    "Top 20 layers trainable": {"mode": "all_but_top", "n": 20, "layer": None},
    "Top 50 layers trainable": {"mode": "all_but_top", "n": 50, "layer": None},
    "Nothing frozen": {"mode": "none", "n": 0, "layer": None},
}
FREEZE_FLAGS = dict(zip(("top10", "top20", "top50", "none"), FREEZE_CHOICES))   # short names for the CLI


def requirement(strategy: str, base: RunConfig) -> str | None:
    """Why ``strategy`` cannot run with the base run's inputs (a sentence naming the fix), or None when it can."""
    try:
        found = catalog.entry(strategy)
    except ConfigError as exc:
        return str(exc)
    for need in found.missing(base):
        need = catalog.NEEDS[need]
        return f"{found.noun} {need.what}: choose it as the strategy above {need.how}, then compare."
    return None


def available(base: RunConfig) -> list[str]:
    """The strategies a comparison can include with the base run's inputs; the scratch baseline is always one."""
    return [s for s in catalog.CATALOG if requirement(s, base) is None]


def _variant(base: RunConfig, strategy: str, backbone: str, freeze: dict, name: str, group: str) -> RunConfig:
    values = base.to_dict()
    spec = get_spec(backbone)
    if backbone != base.backbone:
        values["backbone_file"] = None
        if values["weights"] not in ("imagenet", "none"):   # a weights file fits only the backbone it came from
            values["weights"] = "imagenet"
        if values["image_size"]:
            values["image_size"] = max(int(values["image_size"]), spec.min_size)
    needs = catalog.entry(strategy).needs             # a strategy's own inputs travel only with it
    values.update(strategy=strategy, backbone=backbone, freeze=dict(freeze), name=name, group=group,
                  options=dict(base.options) if strategy == base.strategy else {},
                  target_data=base.target_data if "target_images" in needs else None,
                  label_columns=list(base.label_columns) if "label_columns" in needs else [])
    return RunConfig.from_dict(values)


def plan(base: RunConfig, strategies: Sequence[str], backbones: Sequence[str] | None = None,
         freezes: Sequence[str] | None = None) -> list[RunConfig]:
    """One RunConfig per (backbone, strategy, frozen-layer setting), all sharing the base's data, split and seed.

    ``freezes`` are keys of FREEZE_CHOICES and only vary fine-tuning (the other strategies ignore them). Every
    config gets the same new ``group`` id. Raises ConfigError naming the fix for an empty, impossible or too large
    comparison."""
    strategies = list(dict.fromkeys(strategies))
    if not strategies:
        raise ConfigError("Choose at least one strategy to compare.")
    for strategy in strategies:
        reason = requirement(strategy, base)
        if reason:
            raise ConfigError(reason)
    if base.backbone_file and backbones and list(backbones) != [base.backbone]:
        raise ConfigError("Your own uploaded backbone cannot be swapped for others in a comparison: choose a "
                          "registered backbone on the Model page to compare backbones.")
    backbones = list(dict.fromkeys(backbones or [base.backbone]))
    for name in backbones:
        get_spec(name)                                      # an unknown name lists the valid ones
    unknown = [f for f in freezes or [] if f not in FREEZE_CHOICES]
    if unknown:
        raise ConfigError(f"Unknown frozen-layer setting '{unknown[0]}'. Choose from: {', '.join(FREEZE_CHOICES)}.")
    freeze_options = [(k, FREEZE_CHOICES[k]) for k in dict.fromkeys(freezes or [])] or [("", base.freeze)]
    combos = [(b, s, f) for b in backbones for s in strategies
              for f in (freeze_options if catalog.entry(s).uses_freeze else [("", base.freeze)])]
    if len(combos) > MAX_RUNS:
        raise ConfigError(f"That comparison would queue {len(combos)} runs; the limit is {MAX_RUNS}. Choose fewer "
                          "strategies, backbones or frozen-layer settings.")
    group = secrets.token_hex(4)
    configs = []
    for i, (backbone, strategy, (freeze_label, freeze)) in enumerate(combos, 1):
        parts = [catalog.entry(strategy).title, get_spec(backbone).title] + ([freeze_label] if freeze_label else [])
        name = f"Comparison {group[:4]} {i}/{len(combos)} · " + " · ".join(parts)
        configs.append(_variant(base, strategy, backbone, freeze, name, group))
    return configs


def missing_weights(configs: Sequence[RunConfig]) -> list[str]:
    """Titles of the backbones whose ImageNet weights some planned run needs but this machine has not cached."""
    missing = []
    for c in configs:
        if c.weights == "imagenet" and catalog.entry(c.strategy).pretrained and not c.backbone_file:
            if not weights_cached(c.backbone, resolve_size(c.backbone, c.image_size)):
                missing.append(get_spec(c.backbone).title)
    return list(dict.fromkeys(missing))


def submit(manager, configs: Sequence[RunConfig], owner: str) -> list[str]:
    """Queue a planned comparison's runs in order (one person's runs train one after another); returns their ids."""
    return [manager.submit(config, owner) for config in configs]


_NOT_SETTINGS = ("data", "name", "group")           # what may differ between the runs a version comparison pairs


def cleaning_effect(store, owner: str) -> list[dict]:
    """What cleaning bought: runs with the same settings on two or more versions of one dataset, side by side.

    One row per (dataset, settings, version): the latest finished run of those settings on that version, its test
    accuracy and macro F1, how many test images it was scored on, and the change in accuracy (in points) from the
    earliest version with such a run (None on that one). Settings are the whole run description except its data, name and group."""
    latest: dict[tuple, dict] = {}
    lineages: dict[str, tuple[str, int, str, str]] = {}   # dataset id → (lineage, number, label, base name)
    for record in sorted(store.list(owner=owner), key=lambda r: r.created):
        if record.state.value not in ("done", "stopped") or (record.metrics or {}).get("accuracy") is None:
            continue
        try:
            config = store.config(record.id)
            data_id = dataset_id_of(config.data)
            if data_id and data_id not in lineages:
                versions = dataset_versions(owner, data_id, workspace=store.workspace)
                for v in versions:
                    lineages[v.id] = (versions[0].id, v.number, v.label, versions[0].name)
        except TLError:
            continue
        if data_id not in lineages:
            continue
        lineage, number, label, base = lineages[data_id]
        settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_SETTINGS}
        key = (lineage, repr(sorted(settings.items())), number)
        evaluation = load_evaluation(store.run_dir(record.id)) or {}
        latest[key] = {"dataset": base, "version": label, "number": number, "run": record.id,
                       "settings": " · ".join([catalog.entry(config.strategy).title,
                                               "your own backbone" if config.backbone_file else get_spec(config.backbone).title,
                                              freeze_text(config)]),
                       "accuracy": record.metrics.get("accuracy"), "macro F1": record.metrics.get("macro_f1"),
                       "test images": evaluation.get("n"), "_pair": key[:2]}
    pairs: dict[tuple, list[dict]] = {}
    for row in latest.values():
        pairs.setdefault(row["_pair"], []).append(row)
    out = []
    for rows in pairs.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: r["number"])
        for row in rows:
            row["change"] = None if row is rows[0] else round(100 * (row["accuracy"] - rows[0]["accuracy"]), 1)
            out.append({k: v for k, v in row.items() if k != "_pair"})
    return out
