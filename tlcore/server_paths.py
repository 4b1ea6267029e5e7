"""Datasets from a folder on the server: the operator's data root (``TLS_DATA_ROOT``), confined and listed."""
from __future__ import annotations

from pathlib import Path

from . import settings
from .errors import DataError


def server_root() -> Path | None:
    """The operator's data root (``TLS_DATA_ROOT``), resolved, or None when server import is off."""
    root = settings.data_root()
    return root.resolve() if root is not None else None


def resolve_server_path(text: str) -> Path:
    """A folder, .zip or .csv under the operator's data root. Symlinks and ``..`` are resolved BEFORE the check,
    so nothing outside the root can be reached. Raises DataError with the fix."""
    root = server_root()
    if root is None:
        raise DataError("Importing from a folder on the server is turned off (the operator has not set "
                        "TLS_DATA_ROOT); upload a zip instead.")
    raw = str(text or "").strip()
    if not raw or "\x00" in raw:
        raise DataError("Type or choose a folder inside the server's data folder.")
    candidate = Path(raw).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise DataError("That path cannot be read (it loops through links); choose another folder.") from exc
    if not resolved.is_relative_to(root):
        raise DataError("That folder is outside the data folder this server allows; choose a folder inside it.")
    if not resolved.exists():
        raise DataError(f"There is no '{raw}' in the server's data folder; check the name.")
    if not (resolved.is_dir() or resolved.suffix.lower() in (".zip", ".csv")):
        raise DataError(f"'{raw}' is not a folder, a .zip or a .csv file; choose one of those.")
    return resolved


def list_server_folders(max_depth: int = 2, limit: int = 200) -> list[str]:
    """Folders (and .zip / .csv files) under the data root, relative, for a picker; hidden ones left out."""
    root = server_root()
    if root is None or not root.is_dir():
        return []
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name.lower())
        except OSError:
            return
        for entry in entries:
            if len(found) >= limit or entry.name.startswith("."):
                continue
            try:
                real = entry.resolve()
            except (OSError, RuntimeError):
                continue
            if not real.is_relative_to(root):
                continue
            if entry.is_dir():
                found.append(entry.relative_to(root).as_posix())
                if depth < max_depth:
                    walk(entry, depth + 1)
            elif entry.suffix.lower() in (".zip", ".csv"):
                found.append(entry.relative_to(root).as_posix())

    walk(root, 1)
    return found
