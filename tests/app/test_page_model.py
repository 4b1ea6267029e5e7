"""Model page: the backbone table, weights sources, the layer explorer's live counts, the head, bad files."""
from __future__ import annotations

import os

from _apptools import new_app, no_crash

from tlcore import workspace as ws


def model_page():
    at = new_app().run()
    at.switch_page("views/model.py").run(timeout=120)
    no_crash(at)
    return at


def metric(at, label: str) -> int:
    return int(next(m.value for m in at.metric if m.label == label).split(" ")[0].replace(",", ""))


def test_layer_explorer_counts_update_and_settings_are_saved():
    at = model_page()
    assert at.selectbox(key="backbone_select").value == "mobilenet_025"
    assert any(d.value.shape[0] >= 10 for d in at.dataframe)                     # the backbone table
    assert len(at.get("plotly_chart")) == 1                                      # the layer chart
    top20 = metric(at, "Trainable in the backbone")
    at.slider(key="freeze_top_n").set_value(5).run()
    no_crash(at)
    top5 = metric(at, "Trainable in the backbone")
    assert 0 < top5 < top20
    at.radio(key="freeze_mode").set_value("all").run()
    assert metric(at, "Trainable in the backbone") == 0
    at.radio(key="freeze_mode").set_value("up_to").run()
    assert at.selectbox(key="freeze_block").value
    at.radio(key="weights_source").set_value("none").run()
    at.number_input(key="head_units").set_value(64).run()
    no_crash(at)
    draft = ws.load_draft(at.session_state["owner"])
    assert draft["model"]["weights"] == "none" and draft["model"]["head"]["units"] == 64
    assert draft["model"]["freeze"]["mode"] == "up_to" and draft["model_title"] == "MobileNet α=0.25"
    # A refresh restores the same settings from disk.
    again = new_app({"u": at.query_params["u"]}).run()
    again.switch_page("views/model.py").run(timeout=60)
    assert again.radio(key="weights_source").value == "none" and again.number_input(key="head_units").value == 64


def test_bad_weights_and_backbone_files_are_plain_errors():
    at = model_page()
    at.radio(key="weights_source").set_value("file").run()
    at.file_uploader(key="weights_upload").set_value(("mine.weights.h5", os.urandom(3000), "application/x-hdf5")).run()
    no_crash(at)
    assert any("does not fit" in e.value or "damaged" in e.value for e in at.error), [e.value for e in at.error]
    at.toggle(key="own_backbone_toggle").set_value(True).run()
    at.file_uploader(key="backbone_upload").set_value(("net.keras", os.urandom(3000), "application/octet-stream")).run()
    no_crash(at)
    assert any(".keras" in e.value for e in at.error), [e.value for e in at.error]


def test_frozen_layer_numbers_match_the_choice_and_layers_are_listed():
    """Issue 9: "Train every layer" showed "Frozen layers 59 of 86"."""
    at = model_page()
    at.radio(key="freeze_mode").set_value("none").run()
    no_crash(at)
    frozen = next(m.value for m in at.metric if m.label == "Frozen layers")
    total = int(frozen.split(" of ")[1])
    assert frozen == f"0 of {total}"
    assert any(m.value.startswith("**In short: when fine-tuning, ") and "layers of the backbone will learn from your images" in m.value
               and "(BatchNorm) layers among the unfrozen ones stay as they were" in m.value for m in at.markdown)
    layers = next(d.value for d in at.dataframe if "trainable" in d.value.columns and "block" in d.value.columns)
    assert len(layers) == total and set(layers.columns) == {"layer", "type", "block", "parameters", "trainable"}
    assert set(layers["trainable"]) == {"trains", "no weights", "frozen (BatchNorm, inference mode)"}
    at.radio(key="freeze_mode").set_value("all_but_top").run()
    at.slider(key="freeze_top_n").set_value(20).run()
    assert next(m.value for m in at.metric if m.label == "Frozen layers") == f"{total - 20} of {total}"
    at.radio(key="freeze_mode").set_value("all").run()
    assert next(m.value for m in at.metric if m.label == "Frozen layers") == f"{total} of {total}"
