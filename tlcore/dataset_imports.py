"""Importing datasets into the workspace: a zip, classes built by hand, a CSV with its images, the generated
sample, the public sample download, or a folder under the server's data root (no streamlit, no TensorFlow).

Each import goes into a fresh unguessable folder ``workspace/datasets/<id>/`` and is recorded as the owner's in
:mod:`tlcore.dataset_store`; :mod:`tlcore.data` (scikit-learn, about 2.5 s) is imported only when importing.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Callable

from . import settings
from .dataset_store import DatasetInfo, datasets_dir, list_datasets, register_dataset, split_kw
from .errors import DataError, TLError
from .owners import owner_id_check, safe_name, workspace_path
from .server_paths import resolve_server_path
from .uploads import write_upload

log = logging.getLogger("tlcore.workspace")

PUBLIC_SAMPLE_NAME = "Cats and dogs (public sample, 3,000 photos)"
PUBLIC_SAMPLE_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
PUBLIC_SAMPLE_MAX_BYTES = 200 * 1024 * 1024


def _import(owner: str, name: str, kind: str, build: Callable[[Path], Any], workspace) -> DatasetInfo:
    """Import into a fresh unguessable folder; on any failure the folder is removed and a TLError is raised."""
    owner_id_check(owner)
    dataset_id = secrets.token_hex(12)
    dest = datasets_dir(workspace) / dataset_id
    dest.mkdir(parents=True)
    try:
        dataset = build(dest)
    except TLError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except MemoryError:
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError("The server ran out of memory while importing; import fewer or smaller images.") from None
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        log.exception("import failed")
        raise DataError(f"The images could not be saved on the server ({exc.strerror or type(exc).__name__}); "
                        "free some disk space or ask the operator, then try again.") from exc
    except Exception as exc:  # noqa: BLE001 - the user gets a sentence, the log gets the traceback
        shutil.rmtree(dest, ignore_errors=True)
        log.exception("import failed")
        raise DataError(f"The data could not be imported (unexpected {type(exc).__name__}); check the files "
                        "and try again.") from exc
    return register_dataset(owner, dataset_id, name, kind, len(dataset.classes), len(dataset.samples),
                            workspace=workspace)


def import_zip(owner: str, data: bytes | BinaryIO, filename: str, *, name: str | None = None, val_split=0.15,
               test_split=0.15, seed: int = 0, unlabelled: bool = False, spool_dir: Path | None = None,
               workspace=None, small_classes: str = "train") -> DatasetInfo:
    """Import an uploaded zip of class folders (or, with ``unlabelled``, any images: e.g. target-domain data).
    The zip is spooled to disk in ``spool_dir`` (the browser session's temporary folder) and removed after."""
    from .data import from_zip

    zip_name = safe_name(filename, "upload.zip")
    if not zip_name.lower().endswith(".zip"):
        zip_name += ".zip"

    def build(dest: Path):
        spool = Path(spool_dir or dest) / f"_upload-{secrets.token_hex(4)}"
        write_upload(data, spool / zip_name, settings.MAX_UPLOAD_MB * 2**20)
        try:
            return from_zip(spool / zip_name, dest, unlabelled=unlabelled,
                            **split_kw(val_split, test_split, seed, small_classes))
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    return _import(owner, name or Path(zip_name).stem, "zip", build, workspace)


def import_files(owner: str, classes: dict[str, list[tuple[str, bytes]]], *, name: str | None = None,
                 val_split=0.15, test_split=0.15, seed: int = 0, workspace=None,
                 small_classes: str = "train") -> DatasetInfo:
    """Import classes built by hand: ``{class name: [(file name, bytes), ...]}``."""
    from .data import from_files

    names = [str(c).strip() for c in classes]
    if any(not c for c in names):
        raise DataError("Every class needs a name; type a name for the unnamed class.")
    if len(set(names)) != len(names):
        raise DataError("Two classes have the same name; give every class its own name.")
    empty = [c for c, files in classes.items() if not files]
    if empty:
        raise DataError(f"The class '{empty[0]}' has no images yet; add images to it or remove it.")
    cleaned = {str(c).strip(): list(files) for c, files in classes.items()}
    return _import(owner, name or "Classes built by hand", "files",
                   lambda dest: from_files(cleaned, dest, **split_kw(val_split, test_split, seed, small_classes)),
                   workspace)


def import_csv(owner: str, csv_name: str, csv_data: bytes, images: list[tuple[str, bytes]], *,
               name: str | None = None, label_columns: list[str] | None = None, val_split=0.15, test_split=0.15,
               seed: int = 0, workspace=None, small_classes: str = "train") -> DatasetInfo:
    """Import a CSV (a ``path`` column and a ``label`` column) with the uploaded images it names.

    Browsers upload file names only, so each CSV path is matched by its file name (``photos/cat1.jpg`` finds
    the uploaded ``cat1.jpg``): the CSV is stored with its paths reduced to file names.
    """
    from .data import from_csv

    if not images:
        raise DataError("Add the images that the CSV lists, then import again.")
    if len(csv_data) > settings.MAX_CSV_BYTES:
        raise DataError(f"The CSV file is larger than {settings.MAX_CSV_BYTES // 2**20} MB; split it.")

    def build(dest: Path):
        source = dest / "source"
        source.mkdir()
        taken: set[str] = set()
        for fname, data in images:
            safe = safe_name(fname, "image")
            if safe in taken:
                continue
            taken.add(safe)
            if len(data) <= settings.MAX_FILE_BYTES:
                (source / safe).write_bytes(data)
        csv_path = source / ("_labels_" + safe_name(csv_name, "labels.csv"))
        csv_path.write_bytes(_basename_paths(csv_data))
        return from_csv(csv_path, dest, image_root=source, label_columns=label_columns,
                        **split_kw(val_split, test_split, seed, small_classes))

    return _import(owner, name or Path(safe_name(csv_name, "labels.csv")).stem, "csv", build, workspace)


def _basename_paths(csv_data: bytes) -> bytes:
    """Rewrite a CSV so that every cell that looks like an image path is reduced to a safe file name."""
    import csv
    import io

    from .data.csv_table import parse_csv
    from .images import SUPPORTED_EXTS

    try:
        rows, delimiter = parse_csv(csv_data)
    except csv.Error as err:
        raise DataError("The CSV file cannot be read; save it again as CSV (UTF-8).") from err
    for row in rows[1:]:
        for i, cell in enumerate(row):
            value = cell.strip()
            if value.lower().endswith(SUPPORTED_EXTS) and "://" not in value:
                row[i] = safe_name(value, value)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def import_sample(owner: str, *, per_class: int = 40, val_split=0.15, test_split=0.15, seed: int = 0,
                  workspace=None) -> DatasetInfo:
    """Generate the synthetic shapes sample (no download) and import it."""
    from .data import from_folder
    from .sample import SAMPLE_NAME, make_sample

    def build(dest: Path):
        source = make_sample(dest / "source", per_class=per_class, seed=seed)
        return from_folder(source, dest, **split_kw(val_split, test_split, seed))

    return _import(owner, SAMPLE_NAME, "sample", build, workspace)


def download_public_sample(owner: str, *, url: str | None = None, timeout: float = 5.0, val_split=0.15,
                           test_split=0.15, seed: int = 0, workspace=None) -> DatasetInfo:
    """Download a small public dataset (cats and dogs, the classic transfer-learning example) and import it.

    Raises TLError at once when the machine is offline or the download fails.
    """
    existing = [d for d in list_datasets(owner, include_shared=False, workspace=workspace) if d.kind == "public"]
    if existing:
        return existing[0]
    offline = TLError("This machine is offline (or the download site cannot be reached), so the public sample "
                      "cannot be downloaded: use the built-in sample or upload your own images.")
    tmp_dir = workspace_path(workspace) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    target = tmp_dir / f"public-{secrets.token_hex(6)}.zip"
    try:
        try:
            with urllib.request.urlopen(url or PUBLIC_SAMPLE_URL, timeout=timeout) as response:  # noqa: S310
                write_upload(response, target, PUBLIC_SAMPLE_MAX_BYTES)
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            raise offline from exc
        from .data import from_zip

        def build(dest: Path):
            return from_zip(target, dest, **split_kw(val_split, test_split, seed))

        return _import(owner, PUBLIC_SAMPLE_NAME, "public", build, workspace)
    finally:
        target.unlink(missing_ok=True)


def import_server_path(owner: str, text: str, *, name: str | None = None, val_split=0.15, test_split=0.15,
                       seed: int = 0, label_columns: list[str] | None = None, workspace=None,
                       small_classes: str = "train") -> DatasetInfo:
    """Import a folder (used in place), a .zip or a .csv from under the data root."""
    from .data import load_data

    path = resolve_server_path(text)
    kw = split_kw(val_split, test_split, seed, small_classes)
    if label_columns and path.suffix.lower() == ".csv":
        kw["label_columns"] = label_columns
    return _import(owner, name or path.name, "server", lambda dest: load_data(path, dest, **kw), workspace)
