"""Data page: zip upload, the bad-file report, a random-bytes zip, classes by hand, server folders, escaping."""
from __future__ import annotations

import os

from _apptools import XSS, assert_no_raw_html, class_zip, new_app, no_crash, png_bytes, texts

from tlcore import workspace as ws


def data_page(query: dict | None = None):
    at = new_app(query).run()
    at.switch_page("views/data.py").run()
    no_crash(at)
    return at


def test_empty_data_page_explains_what_to_do(monkeypatch):
    monkeypatch.delenv("TLS_DATA_ROOT", raising=False)
    at = data_page()
    assert any("no datasets yet" in i.value for i in at.info)
    assert at.file_uploader(key="zip_upload") is not None
    assert {s.key for s in at.slider} >= {"val_split", "test_split"}
    assert any("TLS_DATA_ROOT" in i.value for i in at.info)   # server import is off here
    assert any("Your progress" in m.value for m in at.sidebar.markdown)   # the status strip, also on a second run


def test_zip_upload_shows_counts_report_and_escapes_class_names():
    data = class_zip({"cat": (200, 30, 30), XSS: (30, 30, 200)}, extra={"dog/notes.txt": b"not an image",
                                                                       "dog/broken.png": b"\x89PNG broken"})
    at = data_page()
    at.file_uploader(key="zip_upload").set_value(("my pets.zip", data, "application/zip")).run()
    no_crash(at)
    assert not at.error
    at.run()
    assert any("Imported “my pets”" in i.value for i in at.success)
    owner = at.session_state["owner"]
    [info] = ws.list_datasets(owner)
    assert info.n_classes == 2 and info.n_images == 16
    # Counts table, chart and bad-file report.
    frames = [d.value for d in at.dataframe]
    counts = next(f for f in frames if "validation" in f.columns)
    assert set(counts["class"]) == {"cat", XSS} and counts["total"].sum() == 16
    report = next(f for f in frames if "reason" in f.columns)
    assert set(report["file"]) == {"dog/notes.txt", "dog/broken.png"}
    assert any("could not be used" in w.value for w in at.warning)
    # The HTML class name is shown as text, never as markup.
    assert XSS in [t.value for t in at.text] or any(XSS in t.value for t in at.text)
    assert_no_raw_html(texts(at))
    # A refresh (new session, same URL) still has the dataset selected.
    again = data_page({"u": at.query_params["u"]})
    assert again.selectbox(key="dataset_select").value == info.id


def test_random_bytes_zip_is_a_plain_error():
    at = data_page()
    at.file_uploader(key="zip_upload").set_value(("holiday.zip", os.urandom(5000), "application/zip")).run()
    no_crash(at)
    assert len(at.error) == 1
    assert "not a valid zip file" in at.error[0].value and "Traceback" not in at.error[0].value
    at.run()                                   # the message stays while that file is in the uploader
    assert len(at.error) == 1
    assert ws.list_datasets(at.session_state["owner"]) == []


def test_classes_built_by_hand():
    at = data_page()
    at.text_input(key="class_name_0").set_value("ripe")
    at.text_input(key="class_name_1").set_value("unripe")
    at.file_uploader(key="class_files_0").set_value([(f"r{i}.png", png_bytes((200, 0, 0), seed=i), "image/png")
                                                     for i in range(5)])
    at.file_uploader(key="class_files_1").set_value([(f"u{i}.png", png_bytes((0, 200, 0), seed=i), "image/png")
                                                     for i in range(5)])
    at.run()
    at.button(key="add_class").click().run()
    assert at.text_input(key="class_name_2") is not None
    at.button(key="create_from_classes").click().run()
    no_crash(at)
    assert not at.error
    [info] = ws.list_datasets(at.session_state["owner"])
    assert info.n_classes == 2 and info.n_images == 10
    names = [t.key for t in at.text_input if t.key.startswith("class_name_")]    # the form is empty again
    assert names == ["class_name_3", "class_name_4"] and not any(at.text_input(key=k).value for k in names)


def test_server_folder_inside_root_imports_and_outside_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    for name, rgb in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        folder = root / "colours" / name
        folder.mkdir(parents=True)
        for i in range(6):
            (folder / f"{i}.png").write_bytes(png_bytes(rgb, seed=i))
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret", target_is_directory=True)
    monkeypatch.setenv("TLS_DATA_ROOT", str(root))
    at = data_page()
    assert "colours" in at.selectbox(key="server_folder_pick").options
    for bad in ("../secret", "link", str(tmp_path / "secret")):
        at.text_input(key="server_folder").set_value(bad).run()
        at.button(key="server_import_button").click().run()
        no_crash(at)
        assert any("outside the data folder" in e.value for e in at.error), bad
    assert ws.list_datasets(at.session_state["owner"]) == []
    at.text_input(key="server_folder").set_value("colours").run()
    at.button(key="server_import_button").click().run()
    no_crash(at)
    [info] = ws.list_datasets(at.session_state["owner"])
    assert info.n_classes == 2 and info.kind == "server"


def test_other_owners_do_not_see_my_datasets_unless_shared():
    mine = data_page()
    mine.file_uploader(key="zip_upload").set_value(("a.zip", class_zip({"x": (9, 9, 9), "y": (200, 200, 200)}),
                                                    "application/zip")).run()
    owner = mine.session_state["owner"]
    [info] = ws.list_datasets(owner)
    other = data_page()
    assert other.session_state["owner"] != owner
    assert ws.list_datasets(other.session_state["owner"]) == []
    assert any("no datasets yet" in i.value for i in other.info)
    mine.run()
    mine.toggle(key="share_dataset").set_value(True).run()
    no_crash(mine)
    other = data_page({"u": other.query_params["u"]})
    assert other.selectbox(key="dataset_select").value == info.id


def test_split_again_changes_the_counts():
    at = data_page()
    at.file_uploader(key="zip_upload").set_value(("pets.zip", class_zip({"cat": (200, 30, 30), "dog": (30, 30, 200)},
                                                                        per_class=20), "application/zip")).run()
    no_crash(at)
    at.run()
    [info] = ws.list_datasets(at.session_state["owner"], include_shared=False)
    assert at.selectbox(key="dataset_select").value == info.id      # the new import is chosen, not an older one
    counts = next(d.value for d in at.dataframe if "validation" in d.value.columns)
    assert list(counts["test"]) == [3, 3]
    at.slider(key=f"resplit_val_{info.id}").set_value(0.0)
    at.slider(key=f"resplit_test_{info.id}").set_value(0.4)
    at.button(key="resplit_button").click().run()
    no_crash(at)
    counts = next(d.value for d in at.dataframe if "validation" in d.value.columns)
    assert list(counts["test"]) == [8, 8] and list(counts["validation"]) == [0, 0]
    assert any("Split again" in i.value for i in at.info)


# ---------------------------------------------------------------------------------------------- issue 9
def _import(at, name: str, classes: dict) -> ws.DatasetInfo:
    at.file_uploader(key="zip_upload").set_value((f"{name}.zip", class_zip(classes), "application/zip")).run()
    no_crash(at)
    return next(d for d in ws.list_datasets(at.session_state["owner"]) if d.name == name)


def _panel(at):
    return next(e for e in at.expander if e.label == "Import images")


def test_an_import_makes_the_browser_show_the_new_dataset():
    """Major 1: after an import the picker is *told* to show the new dataset (a browser keeps its old choice
    otherwise and sends it back with the next click), and the next click keeps it."""
    at = data_page()
    first = _import(at, "first", {"a": (200, 0, 0), "b": (0, 0, 200)})
    assert at.selectbox(key="dataset_select").value == first.id
    second = _import(at, "second", {"c": (0, 200, 0), "d": (200, 200, 0)})
    box = at.selectbox(key="dataset_select")
    assert box.value == second.id and box.proto.set_value, box.proto
    at.button(key="augment_preview_button").click().run()             # "the first click on anything"
    no_crash(at)
    assert at.selectbox(key="dataset_select").value == second.id
    assert ws.load_draft(at.session_state["owner"])["dataset_id"] == second.id
    at.selectbox(key="dataset_select").set_value(first.id).run()      # the user's own choice is kept as well
    assert ws.load_draft(at.session_state["owner"])["dataset_id"] == first.id
    assert any(t.value.startswith("first: 16 images") for t in at.text)


def test_import_errors_show_outside_the_panel_and_the_panel_keeps_its_state():
    """Major 6: a one-class zip's error is above the (open) panel, not inside it; panel and tab stay as left."""
    at = data_page()
    at.session_state["import_panel"] = True                           # the user opens the panel
    at.run()
    _import(at, "first", {"a": (200, 0, 0), "b": (0, 0, 200)})
    assert _panel(at).proto.expanded                                  # an import leaves it open
    at.file_uploader(key="zip_upload").set_value(("lonely.zip", class_zip({"only": (9, 9, 9)}),
                                                  "application/zip")).run()
    no_crash(at)
    assert [e.value for e in at.error] and "At least 2 classes are needed" in at.error[0].value
    assert not _panel(at).error                                       # shown outside the panel
    assert _panel(at).proto.expanded
    at.run()
    assert len(at.error) == 1                                         # it stays until the next import attempt
    at.session_state["import_tab"] = "Build classes by hand"          # the user opens another tab
    at.run()
    at.button(key="add_class").click().run()
    no_crash(at)
    assert at.session_state["import_tab"] == "Build classes by hand" and _panel(at).proto.expanded
    at.button(key="create_from_classes").click().run()               # a new attempt replaces the message
    assert len(at.error) == 1 and "Two classes or more are needed" in at.error[0].value
    assert not _panel(at).error


def test_delete_asks_first_and_rename_validates():
    at = data_page()
    first = _import(at, "first", {"a": (200, 0, 0), "b": (0, 0, 200)})
    second = _import(at, "second", {"c": (0, 200, 0), "d": (200, 200, 0)})
    owner = at.session_state["owner"]
    at.text_input(key="dataset_name").set_value("   ").run()
    at.button(key="rename_button").click().run()
    assert any("A dataset needs a name" in e.value for e in at.error)
    at.text_input(key="dataset_name").set_value("Garden colours").run()
    at.button(key="rename_button").click().run()
    no_crash(at)
    assert ws.get_dataset(owner, second.id).name == "Garden colours"
    assert any(t.value.startswith("Garden colours: 16 images") for t in at.text)
    at.button(key="delete_dataset").click().run()                     # asks first; nothing is deleted yet
    assert any("Delete “Garden colours” and its 16 images" in w.value for w in at.warning)
    assert len(ws.list_datasets(owner, include_shared=False)) == 2
    at.button(key="delete_cancel").click().run()
    assert len(ws.list_datasets(owner, include_shared=False)) == 2 and not at.warning
    at.button(key="delete_dataset").click().run()
    at.button(key="delete_confirm").click().run()
    no_crash(at)
    assert [d.id for d in ws.list_datasets(owner, include_shared=False)] == [first.id]
    assert at.selectbox(key="dataset_select").value == first.id and at.selectbox(key="dataset_select").proto.set_value
    assert any("Deleted “Garden colours”" in i.value for i in at.info)


def test_counts_table_and_captions_are_not_cut():
    """Text: full file names under the thumbnails; the counts table names every column in words."""
    at = data_page()
    long = "ASIAN GREEN BEE EATER photo 0001"
    data = class_zip({"ASIAN GREEN BEE EATER": (200, 0, 0), "b": (0, 0, 200)}, per_class=3,
                     extra={f"ASIAN GREEN BEE EATER/{long}.png": png_bytes((190, 10, 10), seed=77)})
    at.file_uploader(key="zip_upload").set_value(("birds.zip", data, "application/zip")).run()
    no_crash(at)
    captions = [i.caption.replace("\\", "") for image in at.get("image") for i in image.proto.imgs]
    assert f"{long}.png" in captions, captions
    counts = next(d for d in at.dataframe if "validation" in d.value.columns)
    assert list(counts.value.columns) == ["class", "train", "validation", "test", "total"]


def test_copies_among_uploaded_target_images_are_named():
    """Domain adaptation: copies among uploaded target images are listed by name, as on the Data page."""
    import io
    import zipfile

    token = ws.new_owner_token()
    owner = ws.owner_id(token=token)
    source = ws.import_zip(owner, class_zip({"a": (200, 0, 0), "b": (0, 0, 200)}, per_class=6), "source.zip")
    ws.update_draft(owner, dataset_id=source.id, train={"strategy": "domain_adaptation"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        same = png_bytes((40, 40, 40), seed=1)
        archive.writestr("cam/1.png", same)
        archive.writestr("cam/1 copy.png", same)
        archive.writestr("cam/2.png", png_bytes((90, 20, 20), seed=2))
    at = new_app({"u": token}).run()
    at.switch_page("views/train.py").run(timeout=120)
    at.file_uploader(key="target_upload").set_value(("phone.zip", buffer.getvalue(), "application/zip")).run(
        timeout=120)
    no_crash(at)
    notes = [i.value.replace("\\", "") for i in at.info]
    assert any("Imported 3 target images." in n and "more than once among these images: ('cam/1 copy.png', "
               "'cam/1.png')" in n for n in notes), notes
