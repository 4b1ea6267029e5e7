"""RunConfig round-trips and the run store (folders + SQLite) survives a restart."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tlcore.errors import ConfigError, RunError
from tlcore.runs import RunConfig, RunState, RunStore


def test_config_round_trips_through_json(tmp_path):
    config = RunConfig(data="x.zip", strategy="fine_tune", epochs=4, label_columns=["a", "b"], options={"k": 1})
    path = tmp_path / "run.json"
    path.write_text(config.to_json())
    assert RunConfig.load(path) == config


@pytest.mark.parametrize("data, error", [
    ({"epoch": 3}, "Unknown setting"),
    ({"epochs": -1}, "epochs must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"learning_rate": 0}, "learning_rate must be above 0"),
    ({"optimizer": "adagrad"}, "optimizer must be adam, rmsprop or sgd"),
    ({"val_split": 0.5, "test_split": 0.5}, "leave room for training"),
    ({"image_size": 4}, "image_size must be"),
    ({"distribute": "tpu"}, "distribute must be"),
    ({"workers": 0}, "workers must be a whole number from 1 to 64"),
    ({"workers": 2.0}, "workers must be a whole number"),
    ({"workers": 2, "strategy": "fine_tune", "distribute": "mirrored"}, "distribute auto or multiworker"),
    ({"workers": 2, "strategy": "auto"}, "workers above 1 work with the scratch, fine_tune and feature_extraction"),
    ([1, 2], "must be a JSON object"),
])
def test_invalid_configs_name_the_setting(data, error):
    with pytest.raises(ConfigError, match=error):
        RunConfig.from_dict(data)


def test_invalid_json_is_a_plain_error():
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{oops")


def test_store_lists_by_owner_and_shares_explicitly(workspace):
    store = RunStore(workspace)
    a = store.create(RunConfig(name="a"), owner="alice")
    b = store.create(RunConfig(name="b"), owner="bob")
    assert [r.id for r in store.list("alice")] == [a]
    store.set_shared(b, True)
    assert {r.id for r in store.list("alice")} == {a, b}
    assert [r.id for r in store.list("alice", include_shared=False)] == [a]
    assert len(a.split("-")[-1]) == 12, "ids carry 48 random bits"
    with pytest.raises(RunError, match="There is no run"):
        store.get("nope")


def test_events_append_and_poll(workspace):
    store = RunStore(workspace)
    run_id = store.create(RunConfig())
    for i in range(3):
        store.append_event(run_id, "epoch", epoch=i + 1, loss=1.0 / (i + 1))
    events = store.read_events(run_id)
    assert [e["epoch"] for e in events] == [1, 2, 3]
    assert store.read_events(run_id, after=2)[0]["epoch"] == 3


def test_state_survives_a_new_process_and_lost_runs_become_interrupted(workspace):
    store = RunStore(workspace)
    done = store.create(RunConfig(name="done"))
    store.set_state(done, RunState.RUNNING)
    store.set_state(done, RunState.DONE, metrics={"accuracy": 0.9})
    lost = store.create(RunConfig(name="lost"))
    store.set_state(lost, RunState.RUNNING)
    store._exec("UPDATE runs SET pid = ? WHERE id = ?", (2**22 + 12345, lost))  # a pid that is not alive
    code = ("import json,sys; from tlcore.runs import RunStore; s=RunStore(sys.argv[1]); s.recover_interrupted();"
            "print(json.dumps({r.id: [r.state.value, r.metrics] for r in s.list()}))")
    out = subprocess.run([sys.executable, "-c", code, str(workspace)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    states = json.loads(out.stdout.strip().splitlines()[-1])
    assert states[done] == ["done", {"accuracy": 0.9}]
    assert states[lost][0] == "interrupted"
    assert store.get(lost).error.startswith("The server stopped")
    assert store.resolve(str(store.run_dir(done))) == done


def test_rename_keeps_config_in_step_and_only_the_owner_may(workspace):
    store = RunStore(workspace)
    run_id = store.create(RunConfig(name="fine_tune"), owner="alice")
    assert store.rename(run_id, "  birds   with\taugmentation ", owner="alice") == "birds with augmentation"
    assert store.get(run_id).name == "birds with augmentation"
    assert store.config(run_id).name == "birds with augmentation"
    with pytest.raises(RunError, match="cannot be empty"):
        store.rename(run_id, "   ", owner="alice")
    with pytest.raises(RunError, match="at most"):
        store.rename(run_id, "x" * 500, owner="alice")
    with pytest.raises(RunError, match="Only the person who trained"):
        store.rename(run_id, "mine now", owner="bob")
    assert store.get(run_id).name == "birds with augmentation"


@pytest.mark.parametrize("state, word", [(RunState.RUNNING, "still training"),
                                         (RunState.QUEUED, "still waiting to train")])
def test_delete_refuses_a_run_that_is_waiting_or_training(workspace, state, word):
    store = RunStore(workspace)
    run_id = store.create(RunConfig(name="busy"), owner="alice")
    store.set_state(run_id, state)
    with pytest.raises(RunError, match=f"{word}: stop it first"):
        store.delete(run_id, owner="alice")
    assert store.run_dir(run_id).is_dir() and store.get(run_id).state == state
    store.set_state(run_id, RunState.STOPPED)
    store.delete(run_id, owner="alice")
    assert not store.run_dir(run_id).exists() and store.list("alice") == []


def test_delete_removes_the_folder_and_only_the_owner_may(workspace):
    store = RunStore(workspace)
    run_id = store.create(RunConfig(name="done"), owner="alice")
    store.set_state(run_id, RunState.DONE)
    (store.run_dir(run_id) / "exports").mkdir()
    (store.run_dir(run_id) / "exports" / "model.tflite").write_bytes(b"x")
    store.set_shared(run_id, True)
    with pytest.raises(RunError, match="Only the person who trained"):
        store.delete(run_id, owner="bob")
    store.delete(run_id, owner="alice")
    assert not store.run_dir(run_id).exists()
    with pytest.raises(RunError, match="There is no run"):
        store.get(run_id)
    with pytest.raises(RunError, match="deleted already"):
        store.delete(run_id, owner="alice")
