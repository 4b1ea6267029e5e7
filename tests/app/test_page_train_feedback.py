"""Train page feedback (issue 9): the plain chance warning instead of a green "Training finished", the target score
of a domain-adaptation run, the header of a from-scratch run, help texts that quote the real defaults, and the
comparison's pending cells ("queued" / "training") and its next run.

Runs are written straight into the store (no training): these tests are about what the page says."""
from __future__ import annotations

from _apptools import class_zip, new_app, no_crash

from tlcore import workspace as ws
from tlcore.jobs import get_manager
from tlcore.runs import RunConfig, RunState

TINY_MODEL = {"backbone": "mobilenet_025", "backbone_file": None, "weights": "none", "image_size": 32,
              "freeze": {"mode": "all_but_top", "n": 20, "layer": None},
              "head": {"units": 16, "dropout": 0.0, "enabled": True}}


def owner(train: dict | None = None) -> tuple[str, str]:
    token = ws.new_owner_token()
    me = ws.owner_id(token=token)
    info = ws.import_zip(me, class_zip({"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)},
                                       per_class=6), "colours.zip", val_split=0.2, test_split=0.2)
    ws.update_draft(me, dataset_id=info.id, model=TINY_MODEL, model_title="MobileNet α=0.25",
                    train={"strategy": "scratch", **(train or {})})
    return token, me


def finished_run(me: str, metrics: dict, state: RunState = RunState.DONE, **config) -> str:
    store = get_manager().store
    run_id = store.create(ws.config_from_draft(ws.load_draft(me), **config), me)
    store.set_state(run_id, RunState.RUNNING)
    store.set_state(run_id, state, metrics=metrics)
    return run_id


def train_page(token: str, run: str | None = None):
    at = new_app({"u": token, **({"run": run} if run else {})}).run()
    at.switch_page("views/train.py").run(timeout=120)
    no_crash(at)
    return at


def test_a_model_at_chance_gets_a_plain_warning_not_a_green_finish():
    token, me = owner()
    note = "The model is no better than guessing: 33% on the test images… Fix: choose ImageNet weights."
    run_id = finished_run(me, {"accuracy": 1 / 3, "classes": 3, "chance_warning": note})
    at = train_page(token, run_id)
    assert not any("Training finished" in s.value for s in at.success)
    assert any("no better than guessing" in w.value and "ImageNet" in w.value for w in at.warning)
    # A run saved before the warning existed: worked out from its metrics and settings.
    old = finished_run(me, {"accuracy": 0.34, "classes": 3})
    at = train_page(token, old)
    assert not at.success and any("random weights" in w.value for w in at.warning)
    # A model that learned: the green finish.
    good = finished_run(me, {"accuracy": 0.9, "classes": 3})
    at = train_page(token, good)
    assert any("Training finished" in s.value for s in at.success)
    assert not any("guessing" in w.value for w in at.warning)


def test_domain_adaptation_run_shows_its_target_score():
    token, me = owner()
    run_id = finished_run(me, {"accuracy": 0.9, "classes": 3, "target_accuracy": 0.625})
    at = train_page(token, run_id)
    assert any("target images: **62.5%**" in i.value and "only to score" in i.value for i in at.info)


def test_header_and_help_texts_tell_the_truth():
    token, me = owner()
    at = train_page(token)
    header = " ".join(t.value for t in at.text)
    assert "Weights: random (training from scratch)" in header and "ImageNet" not in header
    defaults = RunConfig()
    assert f"{defaults.batch_size} is the default" in at.select_slider(key="batch_size").help
    assert f"{defaults.epochs} (the default)" in at.number_input(key="epochs").help
    assert f"({defaults.early_stopping} by default)" in at.number_input(key="early_stopping").help
    assert at.selectbox(key="optimizer").options == ["Adam", "RMSprop", "SGD (with momentum)"]   # no raw names


def test_pending_comparison_runs_say_queued_or_training_and_the_next_one_can_be_followed():
    token, me = owner()
    store = get_manager().store
    base = ws.config_from_draft(ws.load_draft(me))
    ids = []
    for i, strategy in enumerate(("feature_extraction", "scratch", "fine_tune"), 1):
        config = RunConfig.from_dict({**base.to_dict(), "strategy": strategy, "group": "abcd1234",
                                      "name": f"Comparison abcd {i}/3 · {strategy}"})
        ids.append(store.create(config, me))
    store.set_state(ids[0], RunState.RUNNING)
    store.set_state(ids[0], RunState.DONE, metrics={"accuracy": 0.9, "classes": 3, "epochs": 2})
    store.set_state(ids[1], RunState.RUNNING)                 # the second trains, the third waits
    at = new_app({"u": token}).run()
    at.switch_page("views/evaluate.py").run(timeout=120)
    no_crash(at)
    table = next(d.value for d in at.dataframe if "trainable params" in d.value.columns)
    assert list(table["accuracy"]) == ["90.0%", "training", "queued"]
    assert list(table["time"])[1:] == ["training", "queued"]
    assert not table.astype(str).isin(["None", "nan"]).any().any()
    # The finished first run offers the one that trains now.
    at = train_page(token, ids[0])
    at.button(key="follow_next_button").click().run()
    assert at.query_params["run"] == ids[1]
    labels = at.selectbox(key="run_select").options
    assert any("training" in o for o in labels) and any("waiting" in o for o in labels)
    for run_id in ids[1:]:
        store.set_state(run_id, RunState.STOPPED)


def test_the_sample_note_shows_only_while_the_samples_recipe_is_chosen():
    token = ws.new_owner_token()
    me = ws.owner_id(token=token)
    _, note = ws.try_sample(me)
    at = train_page(token)
    assert any(i.value == note for i in at.info)
    at.radio(key="strategy").set_value("fine_tune").run(timeout=120)
    no_crash(at)
    assert not any(i.value == note for i in at.info)
    at.radio(key="strategy").set_value("feature_extraction").run(timeout=120)
    assert any(i.value == note for i in at.info)
    # Other weights chosen on the Model page: the note no longer describes the run.
    ws.update_draft(me, model={**ws.load_draft(me)["model"], "weights": "none"})
    at = train_page(token)
    assert not any(i.value == note for i in at.info)
