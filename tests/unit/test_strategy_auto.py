"""The automatic search (strategy ``auto``): Optuna trials on cached features, the winner trained and replayable."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import tiny_config, write_colour_images
from tlcore.errors import ConfigError, DataError
from tlcore.runs import RunConfig


@pytest.mark.parametrize("counts, k, expected", [((10, 10, 10), 3, 3), ((2, 9), 3, 2), ((4, 4), 5, 4)])
def test_folds_are_stratified_and_fit_the_smallest_class(counts, k, expected):
    from tlcore.strategies.auto import folds

    y = np.repeat(np.arange(len(counts)), counts)
    splits = folds(y, k, seed=0)
    assert len(splits) == expected
    for train, test in splits:
        assert set(np.unique(y[test])) == set(range(len(counts)))    # every class in every fold
        assert not set(train) & set(test)


def test_folds_refuse_a_class_of_one_image_with_the_fix():
    from tlcore.strategies.auto import folds

    with pytest.raises(DataError, match="at least 2 training images"):
        folds(np.array([0, 0, 0, 1]), 3, seed=0)


@pytest.mark.parametrize("options", [{"budget_s": 0}, {"folds": 1}, {"max_trials": 0}, {"budget_s": "soon"}])
def test_bad_options_are_refused_with_a_sentence(tmp_path, options):
    with pytest.raises(ConfigError, match="options|budget_s"):
        RunConfig(data=str(tmp_path), strategy="auto", options=options).validate()


def test_an_auto_run_searches_keeps_the_best_and_replays_without_searching(tmp_path, workspace, monkeypatch):
    from strategy_helpers import run
    from tlcore.progress import summarize
    from tlcore.strategies import base

    built = []
    real = base.create_backbone
    monkeypatch.setattr(base, "create_backbone", lambda *a, **k: built.append(a) or real(*a, **k))
    data = write_colour_images(tmp_path / "c", per_class=14)
    config = tiny_config(data, strategy="auto", options={"max_trials": 4, "max_epochs": 5})
    store, run_id, state, run_dir = run(workspace, config)
    assert state.value == "done", store.get(run_id).error
    assert len(built) == 1                 # the backbone is built once: the final model reuses the search's
    search = json.loads((run_dir / "search.json").read_text())
    assert 1 <= len(search["trials"]) <= 4 and "cross-validation" in search["scoring"]   # 5 val images: CV
    complete = [t for t in search["trials"] if t["state"] == "complete"]
    assert search["best_score"] == max(t["score"] for t in complete)
    assert {"units", "dropout", "optimizer", "learning_rate", "class_weights"} <= set(search["best"])
    events = store.read_events(run_id)
    assert sum(e["type"] == "trial" for e in events) == len(search["trials"])
    assert summarize(events).trials == search["trials"]
    # the winner as a plain config: feature extraction with the chosen settings, which trains with no search
    best = RunConfig.from_dict(json.loads((run_dir / "best_config.json").read_text()))
    assert best.strategy == "feature_extraction" and best.epochs == search["epochs"]
    assert best.learning_rate == pytest.approx(search["best"]["learning_rate"])
    _, replay_id, replay_state, replay_dir = run(workspace, best)
    assert replay_state.value == "done" and not (replay_dir / "search.json").exists()
    assert json.loads((run_dir / "evaluation.json").read_text())["n"] > 0
    from tlcore.model_card import model_card

    card = model_card(run_dir)            # the card says what the search tried and what the final model used
    assert f"The search tried {len(search['trials'])} settings" in card
    assert f"| Learning rate | {search['best']['learning_rate']:g} |" in card
