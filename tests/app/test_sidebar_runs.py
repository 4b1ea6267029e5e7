"""The sidebar ticks a step only when it is done for the current dataset and run (not for a visit), the workspace
key comes back from this browser's cookie, and runs can be renamed and deleted (with a confirmation) where they are
picked, their dataset named in the picker."""
from __future__ import annotations

import json

import pytest
from _apptools import class_zip, new_app, no_crash

from tlcore import workspace as ws
from tlcore.jobs import get_manager
from tlcore.runs import RunConfig, RunState
from views import _identity

CHECK = ":green[:material/check_circle:]"


def ticks(at) -> dict[str, bool]:
    """Each step of the sidebar's progress list -> ticked?"""
    strip = next(m.value for m in at.sidebar.markdown if "1 · Data" in m.value)
    out = {}
    for line in strip.split("  \n"):
        step = line.split(" · ")[1].split(" ")[0].lower() if " · " in line else line
        out[step] = line.startswith(CHECK)
    return out


def owner_with_two_datasets():
    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    shapes = ws.import_zip(owner, class_zip({"red": (220, 30, 30), "blue": (30, 40, 220)}), "colours.zip")
    other = ws.import_zip(owner, class_zip({"cat": (200, 200, 30), "dog": (30, 200, 200)}), "pets.zip")
    return token, owner, shapes, other


def finished_run(owner: str, dataset, name: str = "Feature extraction · MobileNet", accuracy: float = 0.9) -> str:
    """A run that ended 'done' on ``dataset``, with a model file (nothing here loads it)."""
    store = get_manager().store
    run_id = store.create(RunConfig(data=dataset.ref, name=name), owner)
    store.set_state(run_id, RunState.RUNNING)
    store.set_state(run_id, RunState.DONE, metrics={"accuracy": accuracy})
    (store.run_dir(run_id) / "model.keras").write_bytes(b"not loaded in these tests")
    (store.run_dir(run_id) / "evaluation.json").write_text(json.dumps({"accuracy": accuracy}))
    return run_id


def test_visiting_pages_ticks_nothing_and_steps_follow_the_current_dataset_and_run():
    token, owner, shapes, other = owner_with_two_datasets()
    ws.update_draft(owner, dataset_id=shapes.id, visited_evaluate=True, visited_predict=True, visited_export=True)
    old_run = finished_run(owner, other)                   # trained on the other dataset
    at = new_app({"u": token, "run": old_run}).run()
    no_crash(at)
    assert ticks(at) == {"data": True, "model": False, "train": False, "evaluate": False, "predict": False,
                         "export": False}
    assert any("Next: Model" in link.label for link in at.sidebar.get("page_link"))

    # The model chosen on the Model page counts for this dataset only.
    at.switch_page("views/model.py").run(timeout=120)
    no_crash(at)
    assert ticks(at)["model"] and not ticks(at)["train"]
    ws.update_draft(owner, dataset_id=other.id)
    at = new_app({"u": token, "run": old_run}).run()
    assert ticks(at)["train"] and ticks(at)["model"]        # that run trained on this dataset
    ws.update_draft(owner, dataset_id=shapes.id)

    # A run trained on the current dataset: Train is ticked; Evaluate once its evaluation was opened; Predict once a
    # prediction was made with it; Export once an export of it exists.
    run_id = finished_run(owner, shapes)
    at = new_app({"u": token, "run": run_id}).run()
    assert ticks(at) == {"data": True, "model": True, "train": True, "evaluate": False, "predict": False,
                         "export": False}
    ws.update_draft(owner, done_runs={"evaluate": [run_id], "predict": [old_run]})
    at = new_app({"u": token, "run": run_id}).run()
    assert ticks(at)["evaluate"] and not ticks(at)["predict"]
    ws.update_draft(owner, done_runs={"predict": [old_run, run_id]})
    exports = get_manager().store.run_dir(run_id) / "exports"
    exports.mkdir()
    (exports / "model.tflite").write_bytes(b"x")
    at = new_app({"u": token, "run": run_id}).run()
    assert all(ticks(at).values()), ticks(at)
    sidebar = " ".join(m.value for m in at.sidebar.markdown) + " ".join(c.value for c in at.sidebar.caption)
    assert "Trained on colours" in sidebar and f"Run {run_id}".replace("-", "\\-") in sidebar
    # The same run, but the user switched to another dataset: nothing after Data counts any more.
    ws.update_draft(owner, dataset_id=other.id)
    at = new_app({"u": token, "run": run_id}).run()
    assert ticks(at) == {"data": True, "model": False, "train": False, "evaluate": False, "predict": False,
                         "export": False}


def test_a_waiting_or_training_run_is_followed_live_in_the_sidebar():
    token, owner, shapes, _ = owner_with_two_datasets()
    store = get_manager().store
    run_id = store.create(RunConfig(data=shapes.ref, name="live one"), owner, state=RunState.RUNNING)
    at = new_app({"u": token, "run": run_id}).run()
    no_crash(at)
    assert any("live one" in m.value and "training" in m.value for m in at.sidebar.markdown)
    store.set_state(run_id, RunState.FAILED, error="x")     # ends: it is drawn once, without the live fragment
    at = new_app({"u": token, "run": run_id}).run()
    assert any("live one" in m.value and "failed" in m.value for m in at.sidebar.markdown)


def test_the_browser_cookie_brings_back_the_workspace_and_the_link_is_shown(monkeypatch):
    token, owner, shapes, _ = owner_with_two_datasets()
    ws.update_draft(owner, dataset_id=shapes.id)
    monkeypatch.setattr(_identity, "cookie_token", lambda: token)
    at = new_app().run()                                   # the plain address, no ?u=
    no_crash(at)
    assert at.session_state["owner"] == owner and at.query_params["u"] == token
    assert any("colours" in m.value for m in at.sidebar.markdown)
    assert any(f"?u={token}" in c.value for c in at.sidebar.code)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "unused for 14 days is deleted" in captions
    # The URL still wins over the cookie (a link opened in this browser).
    other = ws.new_owner_token()
    at = new_app({"u": other}).run()
    assert at.session_state["owner"] == ws.owner_id(token=other)
    # A forged cookie is ignored: a new workspace.
    monkeypatch.setattr(_identity, "cookie_token", lambda: None)
    at = new_app().run()
    assert at.session_state["owner"] not in (owner, ws.owner_id(token=other))


def test_cookie_script_is_only_made_from_valid_tokens():
    token = ws.new_owner_token()
    script = _identity.cookie_script(token)
    assert f"tls_u={token}; Max-Age={14 * 86400}; Path=/; SameSite=Lax" in script
    with pytest.raises(ValueError):
        _identity.cookie_script("x'; alert(1); '")


def export_page(token: str, run_id: str):
    at = new_app({"u": token, "run": run_id}).run()
    at.switch_page("views/export.py").run(timeout=120)
    no_crash(at)
    return at


def test_runs_are_renamed_and_deleted_after_a_confirmation_and_name_their_dataset():
    token, owner, shapes, other = owner_with_two_datasets()
    first = finished_run(owner, other, name="pets run")
    run_id = finished_run(owner, shapes, name="colour run")
    at = export_page(token, run_id)
    picker = at.selectbox(key="export_run")
    assert picker.value == run_id
    labels = list(picker.options)
    assert labels[0].startswith("colour run · on colours · accuracy 90%") and "on pets" in labels[1]

    at.text_input(key=f"export_run_manage_name_{run_id[-12:]}").set_value("  colours, quick  ")
    at.button(key="export_run_manage_rename").click().run()
    no_crash(at)
    assert get_manager().store.get(run_id).name == "colours, quick"
    assert any("now called" in i.value and "colours, quick" in i.value for i in at.info)

    at.button(key="export_run_manage_delete").click().run()
    assert get_manager().store.get(run_id).state == RunState.DONE          # nothing deleted without a yes
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="export_run_manage_delete_no").click().run()
    assert not at.warning and get_manager().store.get(run_id)
    at.button(key="export_run_manage_delete").click().run()
    at.button(key="export_run_manage_delete_yes").click().run()
    no_crash(at)
    assert [r.id for r in get_manager().store.list(owner)] == [first]
    assert not get_manager().store.run_dir(run_id).exists()
    assert any("were deleted" in i.value for i in at.info)
    assert at.selectbox(key="export_run").value == first and at.query_params.get("run") in (None, first)


@pytest.mark.parametrize("url, link", [
    ("http://host:8501/data", "http://host:8501/?u=TOKEN"),
    ("http://host:8501/", "http://host:8501/?u=TOKEN"),
    ("https://school.org/studio/train/", "https://school.org/studio/?u=TOKEN"),
    ("https://school.org/studio", "https://school.org/studio/?u=TOKEN"),
    (None, "?u=TOKEN"),
])
def test_the_private_link_is_the_studios_address(monkeypatch, url, link):
    class Context:
        pass

    context = Context()
    context.url = url
    monkeypatch.setattr(_identity.st, "context", context)
    assert _identity.private_link("TOKEN") == link
