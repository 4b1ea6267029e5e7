"""User-facing errors: every message is one plain sentence that names the fix."""
from __future__ import annotations


class TLError(Exception):
    """A problem the user can fix. ``str(err)`` is shown to the user as it is."""


class ConfigError(TLError):
    """A setting or a name is not valid."""


class DataError(TLError):
    """The data cannot be used as given."""


class ImageError(DataError):
    """One image cannot be used; ``reason`` is the short form for the data report."""

    def __init__(self, name: str, reason: str, fix: str = "") -> None:
        self.name = name
        self.reason = reason
        message = f"{name}: {reason}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class WeightsError(TLError):
    """Pretrained weights cannot be loaded."""


class ModelFileError(TLError):
    """An uploaded model or weights file cannot be used."""


class ExportError(TLError):
    """An export could not be written."""


class RunError(TLError):
    """A run id or run folder is unknown, or the run cannot do what was asked."""
