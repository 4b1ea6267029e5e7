"""The strategy registry: name → strategy object. A new strategy is one file plus one line here."""
from __future__ import annotations

from ..errors import ConfigError
from .base import Strategy, StopRequested, TrainContext, TrainResult
from .feature_extraction import FeatureExtraction
from .fine_tune import FineTune
from .scratch import Scratch
from .domain_adaptation import DomainAdaptation
from .multitask import MultiTask
from .few_shot import FewShot

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (FeatureExtraction(), FineTune(), Scratch(),
                                                 DomainAdaptation(), MultiTask(), FewShot())}


def register(strategy: Strategy) -> None:
    STRATEGIES[strategy.name] = strategy


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; an unknown name raises ConfigError listing the valid ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"Unknown strategy '{name}'. Choose one of: {', '.join(STRATEGIES)}.") from None


__all__ = ["STRATEGIES", "Strategy", "StopRequested", "TrainContext", "TrainResult", "get_strategy", "register"]
