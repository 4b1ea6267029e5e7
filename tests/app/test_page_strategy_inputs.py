"""Train page: every registered strategy is offered with its description; extra inputs appear only when needed."""
from __future__ import annotations

from _apptools import class_zip, new_app, no_crash

from tlcore import workspace as ws


def test_strategy_specific_inputs():
    from tlcore.strategies import STRATEGIES

    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    source = ws.import_zip(owner, class_zip({"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=6), "source.zip")
    target = ws.import_zip(owner, class_zip({"x": (150, 20, 20), "y": (20, 20, 150)}, per_class=3), "target.zip",
                           unlabelled=True, val_split=0, test_split=0)
    ws.update_draft(owner, dataset_id=source.id)
    at = new_app({"u": token}).run()
    at.switch_page("views/train.py").run(timeout=120)
    no_crash(at)
    radio = at.radio(key="strategy")
    assert list(radio.options) == [s.title for s in STRATEGIES.values()]
    assert any(STRATEGIES["auto"].description in i.value for i in at.info)     # the default: the search
    shown = {w.key for kind in ("selectbox", "toggle", "file_uploader") for w in getattr(at, kind)}
    assert not shown & {"target_dataset", "target_upload", "fewshot_projection", "dann_baseline"}

    if "domain_adaptation" in STRATEGIES:
        radio.set_value("domain_adaptation").run()
        no_crash(at)
        assert at.selectbox(key="target_dataset").value is None
        target_options = at.selectbox(key="target_dataset").options      # issue 9: it read "0 classes"
        assert not any("0 classes" in o for o in target_options) and any("no labels" in o for o in target_options)
        assert at.button(key="start_button").disabled                   # no target images chosen yet
        at.selectbox(key="target_dataset").set_value(target.id).run()
        assert not at.button(key="start_button").disabled
        assert ws.load_draft(owner)["train"]["target_data"] == target.ref
        assert any("used only to score" in c.value for c in at.caption)
    if "multitask" in STRATEGIES:
        at.radio(key="strategy").set_value("multitask").run()
        no_crash(at)
        assert any("label columns" in w.value for w in at.warning)
    if "few_shot" in STRATEGIES:
        at.radio(key="strategy").set_value("few_shot").run()
        no_crash(at)
        assert at.toggle(key="fewshot_projection").value is False


def test_uploaded_target_images_become_the_chosen_target():
    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    source = ws.import_zip(owner, class_zip({"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=6), "source.zip")
    ws.update_draft(owner, dataset_id=source.id, train={"strategy": "domain_adaptation"})
    at = new_app({"u": token}).run()
    at.switch_page("views/train.py").run(timeout=120)
    assert at.radio(key="strategy").value == "domain_adaptation" and at.button(key="start_button").disabled
    at.file_uploader(key="target_upload").set_value(
        ("phone photos.zip", class_zip({"x": (150, 20, 20)}, per_class=4), "application/zip")).run(timeout=120)
    no_crash(at)
    assert not at.error
    [target] = [d for d in ws.list_datasets(owner, include_shared=False) if d.id != source.id]
    assert target.n_images == 4 and at.selectbox(key="target_dataset").value == target.id
    assert not at.button(key="start_button").disabled
    assert ws.load_draft(owner)["train"]["target_data"] == ws.DATASET_PREFIX + target.id
