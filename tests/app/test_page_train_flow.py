"""Train page end to end with tiny settings (random weights, 32 px, 1-2 epochs), then Evaluate, Predict, Export;
queue position, Stop, Restart of an interrupted run, reattaching after a refresh, and run isolation."""
from __future__ import annotations

import os

import pytest
from _apptools import XSS, assert_no_raw_html, class_zip, new_app, no_crash, png_bytes

from tlcore import workspace as ws
from tlcore.jobs import get_manager
from tlcore.runs import RunState

TINY_MODEL = {"backbone": "mobilenet_025", "backbone_file": None, "weights": "none", "image_size": 32,
              "freeze": {"mode": "all_but_top", "n": 20, "layer": None},
              "head": {"units": 16, "dropout": 0.0, "enabled": True}}


@pytest.fixture(scope="module", autouse=True)
def one_training_slot():
    """One training slot, so a second run waits in the queue (set before this module's job manager starts)."""
    old = os.environ.get("TLS_MAX_JOBS")
    os.environ["TLS_MAX_JOBS"] = "1"
    yield
    if old is None:
        os.environ.pop("TLS_MAX_JOBS", None)
    else:
        os.environ["TLS_MAX_JOBS"] = old


def owner_with_tiny_draft() -> tuple[str, str]:
    """A fresh owner token whose draft points at a tiny 3-class dataset and a tiny model."""
    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    info = ws.import_zip(owner, class_zip({"red": (220, 30, 30), "green": (30, 200, 40), XSS: (30, 40, 220)},
                                          per_class=10), "colours.zip", val_split=0.2, test_split=0.2)
    ws.update_draft(owner, dataset_id=info.id, model=TINY_MODEL, model_title="MobileNet α=0.25",
                    train={"strategy": "feature_extraction", "batch_size": 8, "early_stopping": 0, "learning_rate": 1e-2})
    return token, owner


def train_page(token: str, run: str | None = None):
    at = new_app({"u": token, **({"run": run} if run else {})}).run()
    at.switch_page("views/train.py").run(timeout=120)
    no_crash(at)
    return at


@pytest.fixture(scope="module")
def trained():
    token, owner = owner_with_tiny_draft()
    at = train_page(token)
    assert {r.key for r in at.radio} >= {"strategy"}
    at.number_input(key="epochs").set_value(2).run()
    at.button(key="start_button").click().run(timeout=60)
    no_crash(at)
    run_id = at.query_params["run"]
    assert get_manager().wait(run_id, timeout=240) == RunState.DONE, get_manager().store.get(run_id).error
    return token, owner, run_id, at


def test_training_run_finishes_and_shows_curves(trained):
    token, owner, run_id, at = trained
    at.run()
    no_crash(at)
    record = get_manager().store.get(run_id)
    assert record.metrics["classes"] == 3
    finished = lambda page: (any("Training finished" in s.value for s in page.success) if  # noqa: E731
                             "chance_warning" not in record.metrics else  # at chance: the plain warning instead
                             any("no better than guessing" in w.value for w in page.warning) and not page.success)
    assert finished(at)
    assert len(at.get("plotly_chart")) == 1
    config = get_manager().store.config(run_id)
    assert (config.data, config.weights, config.image_size, config.epochs) == (
        "dataset:" + ws.load_draft(owner)["dataset_id"], "none", 32, 2)
    # A refresh or a second tab with the URL reattaches to the same run.
    again = train_page(token, run_id)
    assert again.query_params["run"] == run_id and finished(again)


def test_someone_elses_run_is_not_shown(trained):
    _, _, run_id, _ = trained
    stranger = new_app({"run": run_id}).run()
    stranger.switch_page("views/train.py").run(timeout=60)
    no_crash(stranger)
    assert stranger.query_params.get("run") != run_id
    assert not any("Training finished" in s.value for s in stranger.success)


def test_evaluate_predict_and_export_pages(trained):
    token, owner, run_id, _ = trained
    at = new_app({"u": token, "run": run_id}).run()
    at.switch_page("views/evaluate.py").run(timeout=120)
    no_crash(at)
    assert {m.label for m in at.metric} >= {"Accuracy", "Test images"}
    assert len(at.get("plotly_chart")) >= 1                              # the confusion matrix
    assert any("feature_extraction" in list(d.value.get("strategy", [])) for d in at.dataframe)
    assert_no_raw_html([c.value for c in at.caption] + [m.value for m in at.markdown])
    assert any("\\<img src" in c.value for c in at.caption) or not at.caption

    at.switch_page("views/predict.py").run(timeout=120)
    no_crash(at)
    at.file_uploader(key="predict_upload").set_value(("leaf.png", png_bytes((30, 200, 40)), "image/png")).run(timeout=120)
    no_crash(at)
    assert not at.error and len(at.get("plotly_chart")) == 1 and len(at.get("image")) >= 1
    at.file_uploader(key="predict_upload").set_value([("a.png", png_bytes((220, 30, 30)), "image/png"),
                                                      ("b.png", png_bytes((30, 40, 220)), "image/png"),
                                                      ("bad.png", b"not an image", "image/png")]).run(timeout=120)
    no_crash(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["a.png", "b.png", "bad.png"] and table["error"].iloc[2]
    assert at.get("download_button")

    at.switch_page("views/export.py").run(timeout=120)
    no_crash(at)
    at.button(key="export_keras_button").click().run(timeout=120)
    no_crash(at)
    keys = {b.proto.id for b in at.get("download_button")}
    assert any("download_keras" in k for k in keys) and any("download_config" in k for k in keys)
    assert (get_manager().store.run_dir(run_id) / "exports" / "model.keras").is_file()
    # The replay command names the downloaded file, which carries the run's short id (downloads never collide).
    assert any("python -m tlcore train --config " in c.value and f"-{run_id[-6:]}-config.json" in c.value
               for c in at.code)


def test_embedding_map_before_and_after_training(trained):
    token, owner, run_id, _ = trained
    at = new_app({"u": token, "run": run_id}).run()
    at.switch_page("views/evaluate.py").run(timeout=120)
    charts = len(at.get("plotly_chart"))
    for stage in ("before", "after"):
        at.selectbox(key="embedding_stage").set_value(stage).run()
        at.button(key="embedding_button").click().run(timeout=120)
        no_crash(at)
        assert not at.error and len(at.get("plotly_chart")) == charts + 1, stage


def test_queue_position_and_stop(trained):
    token, owner, _, _ = trained
    manager = get_manager()
    config = ws.config_from_draft(ws.load_draft(owner), epochs=500, early_stopping=0)
    first = manager.submit(config, owner)
    second = manager.submit(config, owner)
    at = train_page(token, second)
    assert any("number 1 in the queue" in i.value for i in at.info)
    assert at.button(key="start_button").disabled                      # one active run at a time per person
    at.button(key="stop_button").click().run()
    assert manager.wait(second, 30) == RunState.STOPPED
    at = train_page(token, first)
    at.button(key="stop_button").click().run()
    assert manager.wait(first, 120) in (RunState.STOPPED, RunState.DONE)


def test_interrupted_run_can_be_restarted(trained):
    token, owner, _, _ = trained
    store = get_manager().store
    run_id = store.create(ws.config_from_draft(ws.load_draft(owner), epochs=1), owner)
    store.set_state(run_id, RunState.INTERRUPTED, error="The server stopped while this run was in progress; "
                                                       "restart it from its settings.")
    at = train_page(token, run_id)
    assert any("server stopped" in w.value for w in at.warning)
    at.button(key="restart_button").click().run()
    no_crash(at)
    new_id = at.query_params["run"]
    assert new_id != run_id and store.config(new_id).to_dict() == store.config(run_id).to_dict()
    get_manager().wait(new_id, 240)
    assert store.get(new_id).state == RunState.DONE


def test_one_click_comparison_queues_runs_and_evaluate_sets_them_side_by_side():
    token, owner = owner_with_tiny_draft()
    at = train_page(token)
    at.number_input(key="epochs").set_value(1).run()
    assert at.multiselect(key="compare_strategies").value == ["feature_extraction", "scratch"]   # baseline offered
    options = at.multiselect(key="compare_strategies").options        # no target images, no label columns here
    assert "Training from scratch" in options and not any("DANN" in o or "Multi-task" in o for o in options)
    # Too many runs: a plain warning and no button.
    at.multiselect(key="compare_strategies").set_value(["feature_extraction", "scratch", "fine_tune"]).run()
    at.multiselect(key="compare_backbones").set_value(["mobilenet_025", "vgg16", "vgg19", "resnet50",
                                                       "densenet121"]).run()
    assert any("the limit is 12" in w.value for w in at.warning) and at.button(key="compare_button").disabled
    at.multiselect(key="compare_strategies").set_value(["feature_extraction", "scratch"]).run()
    at.multiselect(key="compare_backbones").set_value(["mobilenet_025"]).run()
    assert at.button(key="compare_button").label == "Queue 2 runs" and not at.button(key="compare_button").disabled
    at.button(key="compare_button").click().run(timeout=60)
    no_crash(at)
    store = get_manager().store
    runs = store.list(owner=owner, include_shared=False)
    assert len(runs) == 2 and at.query_params["run"] == runs[-1].id           # the first queued run is shown
    assert any("2 runs queued" in i.value for i in at.info)
    assert at.button(key="compare_button").disabled and at.button(key="start_button").disabled
    for run in runs:
        assert get_manager().wait(run.id, 300) == RunState.DONE, store.get(run.id).error
    configs = [store.config(r.id) for r in runs]
    assert len({(c.group, c.data, c.seed, c.epochs) for c in configs}) == 1 and configs[0].group

    at.switch_page("views/evaluate.py").run(timeout=120)
    no_crash(at)
    assert at.selectbox(key="compare_group").value == configs[0].group
    table = next(d.value for d in at.dataframe if "trainable params" in d.value.columns)
    assert list(table["strategy"]) == ["feature_extraction", "scratch"] and table["accuracy"].notna().all()
    f1 = next(d.value for d in at.dataframe if "class" in d.value.columns and len(d.value.columns) == 3)
    assert len(f1) == 3
    assert any("compare_chart" in c.proto.id for c in at.get("plotly_chart"))
