"""Per-owner drafts: the current dataset and the model/training settings (no streamlit, no TensorFlow).

A draft is a partial RunConfig per page (``draft["model"]``, ``draft["train"]``: the RunConfig fields marked
for that page) plus the dataset and a few display notes; :func:`config_from_draft` fills the rest from
RunConfig's defaults.

A draft (``workspace/drafts/<hash>.json``) keeps what the owner chose on the pages, so a refresh or a restart
loses nothing; with no draft file it is rebuilt from the owner's latest run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import DRAFT_PAGES, HeadConfig, RunConfig, draft_fields
from .dataset_store import DATASET_PREFIX, dataset_id_of
from .errors import TLError
from .owners import owner_key as _owner_key
from .owners import workspace_path
from .runs import RunStore, atomic_write


def _draft_path(owner: str, workspace) -> Path:
    folder = workspace_path(workspace) / "drafts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_owner_key(owner)}.json"


def load_draft(owner: str, *, workspace=None) -> dict:
    """The owner's draft (current dataset, model and training settings); rebuilt from the latest run if missing."""
    path = _draft_path(owner, workspace)
    try:
        draft = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(draft, dict):
            return draft
    except (OSError, ValueError):
        pass
    return draft_from_latest_run(owner, workspace=workspace)


def save_draft(owner: str, draft: dict, *, workspace=None) -> None:
    atomic_write(_draft_path(owner, workspace), json.dumps(draft, indent=1, ensure_ascii=False, default=str))


def update_draft(owner: str, *, workspace=None, **changes: Any) -> dict:
    """Merge ``changes`` into the owner's draft (dict values are merged one level deep) and save it."""
    draft = load_draft(owner, workspace=workspace)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(draft.get(key), dict):
            draft[key] = {**draft[key], **value}
        else:
            draft[key] = value
    save_draft(owner, draft, workspace=workspace)
    return draft


# The RunConfig fields each page sets, from RunConfig itself (older imports use these names).
MODEL_KEYS = draft_fields("model")
TRAIN_KEYS = draft_fields("train")


def partial_config(draft: dict) -> dict:
    """The draft as a partial RunConfig: its dataset as ``data``, then each page's fields (anything else a draft
    keeps, such as the model's title, is left out)."""
    values: dict[str, Any] = {"data": DATASET_PREFIX + draft["dataset_id"]} if draft.get("dataset_id") else {}
    for page in DRAFT_PAGES:
        keys = draft_fields(page)
        values.update({k: v for k, v in (draft.get(page) or {}).items() if k in keys})
    return values


def draft_from_config(config: RunConfig) -> dict:
    """A draft (dataset, then each page's part of the config) from a RunConfig."""
    data = config.to_dict()
    return {"dataset_id": dataset_id_of(config.data),
            **{page: {k: data[k] for k in draft_fields(page)} for page in DRAFT_PAGES}}


def draft_from_latest_run(owner: str, *, workspace=None) -> dict:
    store = RunStore(workspace_path(workspace))
    for record in store.list(owner=owner, include_shared=False):
        try:
            return draft_from_config(store.config(record.id))
        except TLError:
            continue
    return {}


def config_from_draft(draft: dict, **overrides: Any):
    """The RunConfig a draft describes (plus ``overrides``), every default from RunConfig; ConfigError when a
    setting is invalid."""
    return RunConfig.from_dict({**partial_config(draft), **overrides})


# ------------------------------------------------------------------------------------------------ the sample run
SAMPLE_BACKBONE = "mobilenet_025"


def sample_settings(weights_available: bool, reason: str = "") -> tuple[dict, dict, str]:
    """(model, train, note) for the quick sample run: ImageNet MobileNet α=0.25 with feature extraction (its
    weights ship with the studio), else, only when that file is missing or damaged (``reason``), an honest
    fallback that trains the same network from scratch at a small size."""
    common = dict(backbone=SAMPLE_BACKBONE, head=HeadConfig(units=64), fine_tune_epochs=3, batch_size=16,
                  learning_rate=1e-3)          # everything else: RunConfig's defaults
    if weights_available:
        recipe = RunConfig(**common, weights="imagenet", strategy="feature_extraction", epochs=10)
        note = ("The sample uses MobileNet α=0.25 with its ImageNet weights and feature extraction: the backbone "
                "stays frozen and only a small head learns the three shapes. It takes about a minute.")
    else:
        recipe = RunConfig(**common, weights="none", image_size=64, strategy="scratch", epochs=15)
        note = ("The ImageNet weights of MobileNet that come with the studio are missing or damaged, so the sample "
                "trains the same network from scratch (random start) on 64×64 images instead: expect much "
                "lower accuracy than transfer learning gives. "
                + (reason or "Reinstall the studio to get the weights back."))
    draft = draft_from_config(recipe)
    return draft["model"], draft["train"], note
