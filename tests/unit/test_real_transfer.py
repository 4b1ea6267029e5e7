"""Real transfer: MobileNet α=0.25 with ImageNet weights on birds5 (needs ../shared; skips without it)."""
from __future__ import annotations

import pytest

from tlcore.jobs import JobManager
from tlcore.runs import RunConfig, RunState, RunStore


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    m = JobManager(RunStore(tmp_path_factory.mktemp("real")), max_concurrent=1)
    yield m
    m.shutdown()


def _accuracy(manager, config):
    run_id = manager.submit(config, owner="real")
    assert manager.wait(run_id, 900) == RunState.DONE, manager.store.get(run_id).error
    return manager.store.get(run_id).metrics["accuracy"]


def test_feature_extraction_on_birds5_reaches_90_and_beats_random_init_by_40(birds5, imagenet_mobilenet, manager):
    config = dict(data=str(birds5), backbone="mobilenet_025", strategy="feature_extraction", epochs=10, seed=0)
    pretrained = _accuracy(manager, RunConfig(weights="imagenet", **config))
    random_init = _accuracy(manager, RunConfig(weights="none", **config))
    assert pretrained >= 0.90, pretrained
    assert pretrained - random_init >= 0.40, (pretrained, random_init)
