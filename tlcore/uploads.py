"""Files users upload: spooling an upload to disk under a size limit, and keeping their model files.

No streamlit, no TensorFlow.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import BinaryIO

from . import settings
from .errors import DataError, ModelFileError
from .owners import owner_key, safe_name, workspace_path
from .runs import atomic_write


def write_upload(data: bytes | BinaryIO, target: Path, limit: int) -> None:
    """Stream ``data`` (bytes or a file) to ``target``; DataError (and nothing left behind) past ``limit`` bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as out:
        if isinstance(data, (bytes, bytearray, memoryview)):
            written = len(data)
            if written <= limit:
                out.write(data)
        else:
            while chunk := data.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    break
                out.write(chunk)
    if written > limit:
        target.unlink(missing_ok=True)
        raise DataError(f"{target.name} is larger than {limit // 2**20} MB, the upload limit; split it into smaller "
                        "zips or ask the operator to raise TLS_MAX_UPLOAD_MB.")


def save_upload(owner: str, filename: str, data: bytes, *, kinds: tuple[str, ...], workspace=None) -> Path:
    """Keep a user's uploaded model file (weights .h5 / .weights.h5, or a .keras backbone) on disk; returns its path."""
    safe = safe_name(filename, "upload")
    if not safe.lower().endswith(tuple(k.lower() for k in kinds)):
        raise ModelFileError(f"{safe} is not a {' or '.join(kinds)} file; choose a file of that kind.")
    limit = settings.MAX_UPLOAD_MB * 2**20
    if len(data) > limit:
        raise ModelFileError(f"{safe} is larger than {settings.MAX_UPLOAD_MB} MB, the upload limit.")
    folder = workspace_path(workspace) / "uploads" / owner_key(owner)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(6)}-{safe}"
    atomic_write(target, bytes(data))
    return target
