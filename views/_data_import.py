"""The Data page's import panel: a zip, classes built by hand, a CSV with images, or a folder on the server."""
from __future__ import annotations

import streamlit as st

from views import _ui
from tlcore import workspace as ws
from tlcore.errors import TLError

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"]


NOTICE = "import_notice"


def show_notice() -> None:
    """The last import's result or error, shown right under the import panel (outside it, so a closed panel hides
    nothing, and in view of the uploader at the panel's foot); it stays until the next import attempt or until the
    user picks another dataset."""
    kind, text = st.session_state.get(NOTICE) or (None, None)
    if kind == "error":
        _ui.show_error(text)
    elif kind == "success":
        st.success(_ui.esc(text), icon=":material/check_circle:")


def clear_notice() -> None:
    st.session_state.pop(NOTICE, None)


def _failed(err: BaseException | str) -> None:
    """An import failed: its sentence goes above the panel, and this run shows it at once."""
    st.session_state[NOTICE] = ("error", str(err))
    st.rerun()


def _imported(info: ws.DatasetInfo) -> None:
    _ui.save_draft(dataset_id=info.id)                # the picker follows the draft on the next run
    st.session_state[NOTICE] = ("success", f"Imported “{info.name}”: {info.n_images} images in {info.n_classes} "
                                           "classes. Check the report below, then go on to the model.")
    st.rerun()


def _run_import(what: str, fn, *args, done=None, **kwargs) -> None:
    """Import with ``fn``; its result or error becomes the notice. ``done()`` runs after a success (e.g. to empty
    a form, so one more click cannot import the same images again)."""
    clear_notice()
    with st.spinner("Checking every image… (large uploads take a little while)"):
        try:
            info = fn(st.session_state["owner"], *args, **kwargs)
        except TLError as err:
            _failed(err)
        except MemoryError:
            _failed("The server ran out of memory while importing; import fewer or smaller images at a time.")
        except Exception:  # noqa: BLE001 - the log keeps the traceback, the user gets a sentence
            _ui.log.exception("import failed")
            _failed(_ui.UNEXPECTED.format(what=what))
        else:
            if done is not None:
                done()
            _imported(info)


def split_settings() -> dict:
    st.markdown("**How to split the images**")
    cols = st.columns(2)
    val = cols[0].slider("Validation share", 0.0, 0.4, 0.15, 0.05, key="val_split",
                         help="Images held back during training to check for over-fitting after every epoch. "
                              "15% is a good default. Ignored when your zip already has a valid/ or val/ folder.")
    test = cols[1].slider("Test share", 0.0, 0.4, 0.15, 0.05, key="test_split",
                          help="Images kept aside until the very end to measure the final accuracy honestly. "
                               "Ignored when your zip already has a test/ folder.")
    st.caption("You can change the shares later, below the dataset's counts.")
    return {"val_split": val, "test_split": test}


def zip_tab(split: dict) -> None:
    st.caption("One folder per class inside the zip, e.g. cats/…jpg and dogs/…jpg. Folders named train/, valid/ "
               "and test/ around the class folders are honoured.")
    up = st.file_uploader("Zip of class folders", type=["zip"], key="zip_upload",
                          help="Zip a folder that holds one sub-folder of images per class, then drop it here. "
                               "Files that are not images are skipped and listed in the report.")
    if up is None or st.session_state.get("zip_tried") == up.file_id:
        return                                        # each uploaded file is imported once
    st.session_state["zip_tried"] = up.file_id
    up.seek(0)
    _run_import("Importing the zip", ws.import_zip, up, up.name, spool_dir=_ui.session_tmp(), **split)


def hand_tab(split: dict) -> None:
    st.caption("Add a class, give it a name, and drop its images in. Two classes or more are needed.")
    ids = st.session_state.setdefault("hand_classes", [0, 1])
    for cid in list(ids):
        with st.container(border=True):
            cols = st.columns([3, 1])
            cols[0].text_input("Class name", key=f"class_name_{cid}", placeholder="e.g. ripe",
                               help="The name the model will answer with, e.g. 'ripe' or 'unripe'.")
            if len(ids) > 2 and cols[1].button("Remove class", key=f"remove_class_{cid}",
                                               help="Removes this class and its images from the list."):
                ids.remove(cid)
                st.rerun()
            st.file_uploader("Images of this class", type=IMAGE_TYPES, accept_multiple_files=True,
                             key=f"class_files_{cid}",
                             help="Drop photos of this class here; 20 or more per class work well.")
    cols = st.columns(2)
    if cols[0].button("Add a class", key="add_class", help="Adds another empty class."):
        ids.append(max(ids) + 1)
        st.rerun()
    if cols[1].button("Create the dataset from these classes", key="create_from_classes", type="primary",
                      help="Checks every image and saves these classes as one of your datasets."):
        classes = {}
        for cid in ids:
            name = (st.session_state.get(f"class_name_{cid}") or "").strip()
            files = st.session_state.get(f"class_files_{cid}") or []
            if not name and not files:
                continue
            classes[name] = classes.get(name, []) + [(f.name, f.getvalue()) for f in files]
        if len(classes) < 2:
            _failed("Two classes or more are needed: name each class and add its images.")
        _run_import("Creating the dataset", ws.import_files, classes, done=_new_hand_form, **split)


def _new_hand_form() -> None:
    """Two fresh, empty classes (new widget keys: uploaders cannot be emptied otherwise)."""
    ids = st.session_state.get("hand_classes") or [0, 1]
    st.session_state["hand_classes"] = [max(ids) + 1, max(ids) + 2]


def csv_tab(split: dict) -> None:
    st.caption("A CSV file with a 'path' column (the image file names) and a 'label' column, plus the images it "
               "lists. Extra columns become extra labels for multi-task training.")
    csv_file = st.file_uploader("CSV file", type=["csv", "tsv", "txt"], key="csv_upload",
                                help="The first row names the columns: path,label (for example cat1.jpg,cat).")
    pics = st.file_uploader("The images the CSV lists", type=IMAGE_TYPES, accept_multiple_files=True,
                            key="csv_images_upload",
                            help="Select all the images at once; they are matched to the CSV by file name.")
    if st.button("Import the CSV and images", key="csv_import_button", disabled=csv_file is None,
                 help="Checks every row and image; rows whose image is missing are listed in the report."):
        images = [(f.name, f.getvalue()) for f in pics or []]
        _run_import("Importing the CSV", ws.import_csv, csv_file.name, csv_file.getvalue(), images, **split)


def server_tab(split: dict) -> None:
    root = ws.server_root()
    if root is None:
        st.info("Importing from a folder on the server is off: the person who runs this server has not set a data "
                "folder (TLS_DATA_ROOT). Upload a zip instead.")
        return
    st.caption("Folders, .zip and .csv files inside the server's data folder. Images in a folder are used in "
               "place, not copied.")
    options = ws.list_server_folders()
    pick = st.selectbox("Folder on the server", ["(type a path below)"] + options, key="server_folder_pick",
                        help="Choose a folder of class folders (or a .zip / .csv) that the operator put on the server.")
    typed = st.text_input("…or type its path inside the data folder", key="server_folder",
                          placeholder="e.g. birds/train",
                          help="A path inside the server's data folder; paths outside it are refused.")
    path = typed.strip() or (pick if pick != "(type a path below)" else "")
    if st.button("Import from the server", key="server_import_button", disabled=not path,
                 help="Imports the chosen folder as one of your datasets."):
        _run_import("Importing the folder", ws.import_server_path, path, **split)


TABS = ["Zip of class folders", "Build classes by hand", "CSV + images", "Folder on the server"]


def import_panel() -> None:
    """The split shares and one tab per kind of source; the chosen tab stays chosen across reruns."""
    split = split_settings()
    tabs = st.tabs(TABS, key="import_tab", on_change="rerun")
    for tab, draw in zip(tabs, (zip_tab, hand_tab, csv_tab, server_tab)):
        with tab:
            draw(split)
