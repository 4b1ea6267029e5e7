"""Owners of datasets and runs, and the workspace folder they live in (no streamlit, no TensorFlow).

Owners are strings: ``"user:<email>"`` when the server has logins, else ``"u:<token>"`` where the token is an
unguessable value kept in the page's URL.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from . import settings
from .errors import TLError

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def new_owner_token() -> str:
    """An unguessable token for an anonymous owner (kept in the page's URL as ``?u=``)."""
    return secrets.token_urlsafe(18)


def is_owner_token(value: object) -> bool:
    return isinstance(value, str) and bool(_TOKEN_RE.match(value))


def owner_id(*, email: str | None = None, token: str | None = None) -> str:
    """The owner string stored with datasets and runs: the login email when there is one, else the token."""
    if email:
        return "user:" + email.strip().lower()
    if not is_owner_token(token):
        raise TLError("This browser's workspace link is not valid; open the studio's address again.")
    return "u:" + str(token)



def owner_key(owner: str) -> str:
    """A short hash of the owner string, used to name the owner's files (drafts, uploads, session folders)."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32]


def owner_id_check(owner: str) -> None:
    """TLError unless ``owner`` looks like an owner string this studio hands out."""
    if not isinstance(owner, str) or (not owner.startswith(("u:", "user:")) and owner != "local"):
        raise TLError("This browser's workspace link is not valid; open the studio's address again.")


def workspace_path(workspace: str | os.PathLike | None = None) -> Path:
    """The workspace folder: ``workspace`` or the configured one."""
    return Path(workspace) if workspace is not None else settings.workspace_dir()


def safe_name(filename: str, default: str) -> str:
    """A file name with no folders and no odd characters, for files we write ourselves."""
    name = Path(str(filename).replace("\\", "/")).name
    name = re.sub(r"[^\w.\- ]+", "_", name, flags=re.UNICODE).strip(" .")[:100]
    return name or default
