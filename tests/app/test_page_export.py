"""The Export page: a row per format of the table, the parity matrix (flagged files and their images), the zip of
everything, and the code to paste filled in with the run's download names, input size and classes."""
from __future__ import annotations

import json

from _apptools import class_zip, new_app, no_crash, texts

from tlcore import workspace as ws
from tlcore.export_formats import EXPORT_FORMATS
from tlcore.jobs import get_manager
from tlcore.runs import RunConfig, RunState

PARITY = {"n": 25, "split": "test", "ok": False, "reference_accuracy": 0.96, "image_size": 64, "rows": [
    {"format": "keras", "title": "Keras", "file": "model.keras", "runtime": "keras", "agree": 1.0, "disagree": 0,
     "max_abs_diff": 0.0, "accuracy": 0.96, "flag_at": 0.01, "flagged": False, "images": []},
    {"format": "tflite-int8", "title": "int8", "file": "model_int8.tflite", "runtime": "tflite", "agree": 0.92,
     "disagree": 2, "max_abs_diff": 0.4, "accuracy": 0.9, "flag_at": 0.03, "flagged": True,
     "images": ["finch_3.jpg", "wren_1.jpg"]}]}


def test_the_export_page_shows_formats_parity_bundle_and_snippets():
    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    dataset = ws.import_zip(owner, class_zip({"red": (220, 30, 30), "blue": (30, 40, 220)}), "colours.zip")
    store = get_manager().store
    run_id = store.create(RunConfig(data=dataset.ref, name="Colours", image_size=64), owner)
    store.set_state(run_id, RunState.RUNNING)
    store.set_state(run_id, RunState.DONE, metrics={"accuracy": 0.96})
    run_dir = store.run_dir(run_id)
    (run_dir / "model.keras").write_bytes(b"not loaded by this page")
    (run_dir / "labels.json").write_text(json.dumps(["blue", "red"]))
    (run_dir / "parity.json").write_text(json.dumps(PARITY))

    at = new_app({"u": token, "run": run_id}).run()
    at.switch_page("views/export.py").run(timeout=180)
    no_crash(at)
    keys = {b.key for b in at.button}
    assert {f"export_{name}_button" for name in EXPORT_FORMATS} <= keys and "export_bundle_button" in keys
    shown = " ".join(texts(at)).replace("\\", "")   # the page escapes Markdown in file names
    assert "Some exported files disagree" in shown and "25 test images" in shown
    assert "model_int8.tflite picks another class than the studio on 2 images: finch_3.jpg, wren_1.jpg" in shown
    table = at.dataframe[-1].value   # the parity matrix
    assert list(table["file"]) == ["model.keras", "model_int8.tflite"]
    assert list(table["verdict"]) == ["agrees", "flagged"]
    code = [c.value for c in at.code]
    keras_code = next(c for c in code if "keras.saving.load_model" in c)
    assert f"-{run_id[-6:]}-model.keras" in keras_code and "64x64" in keras_code
    assert any('["blue", "red"]' in c and "onnxruntime" in c for c in code)
    assert any("FloatArray(2)" in c for c in code) and any(f"/v1/models/{run_id}:predict" in c for c in code)
