"""The Data page's check panel without a browser: the small-class choice, versions, and a failed check's sentence."""
from __future__ import annotations

from _apptools import class_zip, new_app, no_crash

from tlcore import audit_jobs
from tlcore import workspace as ws


def plain(text: str) -> str:
    """Shown text without the Markdown escapes."""
    return text.replace("\\", "")


def _imported(classes: dict, per_class: dict | None = None):
    at = new_app().run()
    at.switch_page("views/data.py").run()
    data = class_zip(classes, per_class=8)
    if per_class:
        import io
        import zipfile

        buffer = io.BytesIO(data)
        with zipfile.ZipFile(buffer) as src:
            kept = [n for n in src.namelist() if int(n.split("/")[1].split(".")[0]) < per_class.get(n.split("/")[0], 8)]
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as dst:
                for name in kept:
                    dst.writestr(name, src.read(name))
        data = out.getvalue()
    at.file_uploader(key="zip_upload").set_value(("pets.zip", data, "application/zip")).run()
    at.run()
    no_crash(at)
    return at


def test_a_small_class_trains_and_can_be_left_out_as_a_new_version():
    at = _imported({"cat": (200, 30, 30), "dog": (30, 30, 200), "owl": (30, 200, 30)}, per_class={"owl": 1})
    owner = at.session_state["owner"]
    [info] = ws.list_datasets(owner)
    assert info.n_classes == 3
    assert any("Class 'owl' has 1 image" in plain(w.value) for w in at.warning)
    ws.update_draft(owner, model={"backbone": "mobilenet_025"}, model_dataset=info.id)    # a model chosen for v1
    at.button(key="leave_out_owl").click().run()
    no_crash(at)
    assert any("Made pets v2 ('owl' left out)" in plain(i.value) for i in at.info)
    versions = ws.dataset_versions(owner, info.id)
    assert ws.load_draft(owner)["model_dataset"] == versions[1].id        # the new version keeps it: still ticked
    assert [v.label for v in versions] == ["v1: as imported", "v2: 'owl' left out"]
    assert ws.load_dataset(owner, versions[1].id).classes == ["cat", "dog"]
    assert any("Versions: v1: as imported" in plain(m.value) for m in at.markdown)


def test_a_failed_check_says_why_in_a_sentence(monkeypatch):
    at = _imported({"cat": (200, 30, 30), "dog": (30, 30, 200)})
    owner = at.session_state["owner"]
    [info] = ws.list_datasets(owner)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("tlcore.audit.audit_dataset", broken)
    at.button(key="check_data_button").click().run()
    assert audit_jobs.wait_check(info.id, timeout=60)["state"] == "failed"
    at.run()
    no_crash(at)
    assert any("The check stopped with an unexpected RuntimeError" in plain(e.value) for e in at.error)
    assert not any("boom" in e.value for e in at.error)


def test_class_names_that_differ_by_case_are_merged_as_a_new_version(imagenet_mobilenet):
    at = _imported({"Cat": (200, 30, 30), "cat": (190, 40, 30), "dog": (30, 30, 200)})
    owner = at.session_state["owner"]
    [info] = ws.list_datasets(owner)
    at.button(key="check_data_button").click().run()
    assert audit_jobs.wait_check(info.id, timeout=300)["state"] == "done"
    at.run()
    no_crash(at)
    assert any("they differ only by case" in plain(m.value) for m in at.markdown)
    at.radio(key="fix_names_0").set_value("Merge 'cat' into 'Cat'").run()
    assert any("Chosen: 0 to remove, 0 to move, merge 'cat' into 'Cat'" in plain(c.value) for c in at.caption)
    at.button(key="apply_fixes_button").click().run()
    no_crash(at)
    versions = ws.dataset_versions(owner, info.id)
    assert [v.label for v in versions] == ["v1: as imported", "v2: 'cat' merged into 'Cat'"]
    merged = ws.load_dataset(owner, versions[1].id)
    assert merged.classes == ["Cat", "dog"] and merged.counts() == {"Cat": 16, "dog": 8}
