"""What the web pages need from the workspace, in one import (no streamlit, no TensorFlow).

The pieces live in their own modules and are re-exported here:
:mod:`.owners` (who owns what, the workspace folder), :mod:`.dataset_store` (the SQLite index of datasets),
:mod:`.dataset_imports` (zip, files, CSV, samples, server folders), :mod:`.server_paths` (the operator's data
root), :mod:`.uploads` (spooled uploads, users' model files), :mod:`.dataset_summary` (counts and thumbnails)
and :mod:`.drafts` (each owner's current choices). :func:`try_sample` fills every step for the sample.

:mod:`tlcore.data` (which imports scikit-learn, about 2.5 s) is imported lazily, so listing stays fast.
"""
from __future__ import annotations

from typing import Any, Callable

from .dataset_imports import (PUBLIC_SAMPLE_MAX_BYTES, PUBLIC_SAMPLE_NAME, PUBLIC_SAMPLE_URL,  # noqa: F401
                              download_public_sample, import_csv, import_files, import_sample, import_server_path,
                              import_zip)
from .audit_jobs import ACTIVE as CHECK_ACTIVE, check_status, load_check, start_check, stop_check  # noqa: F401
from .dataset_store import (DATASET_PREFIX, DatasetInfo, VersionInfo, dataset_id_of, dataset_name,  # noqa: F401
                            dataset_versions, datasets_dir, datasets_in_use, delete_dataset, get_dataset,
                            list_datasets, load_dataset, new_version, rename_dataset, resplit_dataset,
                            runs_using_dataset, set_dataset_shared, version_number)
from .dataset_summary import dataset_summary, thumbnails  # noqa: F401
from .drafts import (MODEL_KEYS, SAMPLE_BACKBONE, TRAIN_KEYS, config_from_draft, draft_from_config,  # noqa: F401
                     draft_from_latest_run, load_draft, sample_settings, save_draft, update_draft)
from .owners import (is_owner_token, new_owner_token, owner_id, owner_id_check, owner_key,  # noqa: F401
                     workspace_path)
from .server_paths import list_server_folders, resolve_server_path, server_root  # noqa: F401
from .uploads import save_upload  # noqa: F401


def try_sample(owner: str, *, workspace=None, progress: Callable[[str], Any] | None = None) -> tuple[DatasetInfo, str]:
    """Fill every step for the sample: import the shapes, choose the model and a quick strategy (saved in the
    owner's draft). Returns the dataset and a plain note on what was chosen and why. ``progress`` is told each
    step as a sentence before it starts."""
    from .backbones import get_spec, install_shipped_weights
    from .errors import WeightsError

    say = progress or (lambda text: None)
    existing = [d for d in list_datasets(owner, include_shared=False, workspace=workspace) if d.kind == "sample"]
    say("Your sample images are already here; using them." if existing else
        "Drawing 120 pictures of circles, squares and triangles, and splitting them into training, validation "
        "and test images…")
    info = existing[0] if existing else import_sample(owner, workspace=workspace)
    say(f"Putting the ImageNet weights of {get_spec(SAMPLE_BACKBONE).title} (2.1 MB, shipped with the studio) in "
        "place and checking them…")
    try:   # the shipped weights go into Keras's cache now (sha256 checked), so the run itself needs no download
        model, train, note = sample_settings(install_shipped_weights(SAMPLE_BACKBONE))
    except WeightsError as exc:
        model, train, note = sample_settings(False, str(exc))
    say(f"Choosing a quick recipe: {train['strategy'].replace('_', ' ')}, {train['epochs']} epochs.")
    draft = load_draft(owner, workspace=workspace)
    draft.update(dataset_id=info.id, model=model, model_dataset=info.id, train=train,
                 model_title=get_spec(SAMPLE_BACKBONE).title,
                 sample_note=note)
    save_draft(owner, draft, workspace=workspace)
    return info, note
