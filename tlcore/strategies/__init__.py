"""The strategy registry, built from :mod:`tlcore.catalog`: name → strategy object, each imported when first used.

A new strategy is one module with a class that has ``fit(ctx) -> TrainResult`` plus one catalog entry; its name,
title and description come from that entry.
"""
from __future__ import annotations

import importlib
from typing import Iterator, Mapping

from ..catalog import CATALOG, StrategyEntry, entry
from .base import Strategy, StopRequested, TrainContext, TrainResult


def _instantiate(found: StrategyEntry) -> Strategy:
    impl = found.impl
    if isinstance(impl, str):
        module, _, name = impl.partition(":")
        impl = getattr(importlib.import_module(module), name)
    strategy = impl()
    strategy.name, strategy.title, strategy.description = found.name, found.title, found.description
    return strategy


class _Registry(Mapping):
    """A live view of the catalog whose values are the strategy objects (imported and made on first use)."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[StrategyEntry, Strategy]] = {}

    def __getitem__(self, name: str) -> Strategy:
        found = CATALOG[name]
        made = self._made.get(name)
        if made is None or made[0] is not found:
            made = self._made[name] = (found, _instantiate(found))
        return made[1]

    def __iter__(self) -> Iterator[str]:
        return iter(list(CATALOG))

    def __len__(self) -> int:
        return len(CATALOG)


STRATEGIES: Mapping[str, Strategy] = _Registry()


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; an unknown name raises ConfigError listing the valid ones."""
    entry(name)
    return STRATEGIES[name]


__all__ = ["STRATEGIES", "Strategy", "StopRequested", "TrainContext", "TrainResult", "get_strategy"]
