"""Unpacking an uploaded zip safely: no traversal, links, bombs, nested zips or lying headers."""
from __future__ import annotations

import errno
import re
import stat
import zipfile
from pathlib import Path

from .. import images, settings
from ..errors import DataError, TLError
from .dataset import DataReport, is_junk


def _safe_parts(raw: str) -> tuple[str, ...] | None:
    """The path parts of a zip entry, or None when it could escape the destination."""
    name = raw.replace("\\", "/")
    if "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def safe_suffix(name: str) -> str:
    """The file's lower-case extension when it is a plain one, else ``.bin``."""
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"


def unzip(zip_path: Path, out: Path, report: DataReport) -> list[tuple[tuple[str, ...], Path]]:
    """Stream every acceptable entry to ``out`` under a generated name, enforcing the settings' caps."""
    name = zip_path.name
    try:
        archive = zipfile.ZipFile(zip_path)
        infos = archive.infolist()
    except Exception as err:  # noqa: BLE001 - zipfile raises many kinds for damaged archives
        raise DataError(f"{name} is not a valid zip file; create the zip again and upload it.") from err
    with archive:
        if len(infos) > settings.MAX_ZIP_FILES:
            raise DataError(f"{name} holds {len(infos)} files; the limit is {settings.MAX_ZIP_FILES} "
                            "(TLS_MAX_ZIP_FILES). Split it into smaller zips.")
        files = [i for i in infos if not i.filename.endswith(("/", "\\"))]   # (ZipInfo.is_dir fails on "")
        if not files:
            raise DataError(f"{name} is empty; put one folder of images per class in it and zip it again.")
        limit_mb = settings.MAX_ZIP_TOTAL_BYTES // 2**20
        if sum(i.file_size for i in files) > settings.MAX_ZIP_TOTAL_BYTES:
            raise DataError(f"{name} unpacks to more than {limit_mb} MB, the limit (TLS_MAX_ZIP_TOTAL_MB); "
                            "split it into smaller zips.")
        out.mkdir(parents=True, exist_ok=True)
        items, total = [], 0
        for index, info in enumerate(files):
            parts = _safe_parts(info.filename)
            if parts is None:
                report.skipped.append((info.filename, "unsafe path that points outside the zip (skipped)"))
                continue
            if is_junk(parts):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                report.skipped.append((info.filename, "a symbolic link (skipped for safety)"))
                continue
            if parts[-1].lower().endswith(".zip"):
                report.skipped.append((info.filename, "a zip inside the zip: unpack it first"))
                continue
            if info.flag_bits & 0x1:
                report.skipped.append((info.filename, "encrypted: zip it again without a password"))
                continue
            if info.file_size > settings.MAX_FILE_BYTES:
                report.skipped.append((info.filename, images.too_big_reason(info.file_size)))
                continue
            _check_ratio(name, info.filename, info.file_size, info.compress_size)
            target = out / f"{index:06d}{safe_suffix(parts[-1])}"
            written = _copy_entry(archive, info, target, name)
            if written is None:
                report.skipped.append((info.filename, "damaged inside the zip"))
                continue
            total += written
            if total > settings.MAX_ZIP_TOTAL_BYTES:
                raise DataError(f"{name} unpacks to more than {limit_mb} MB, the limit (TLS_MAX_ZIP_TOTAL_MB); "
                                "split it into smaller zips.")
            items.append((parts, target))
    return items


def _check_ratio(zip_name: str, entry: str, size: int, compressed: int) -> None:
    if size > settings.ZIP_RATIO_MIN_BYTES and size > settings.MAX_ZIP_RATIO * max(compressed, 1):
        raise DataError(f"{zip_name} looks like a zip bomb: '{entry}' expands more than {settings.MAX_ZIP_RATIO}× "
                        "(the MAX_ZIP_RATIO limit); zip the real images again.")


def _copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_name: str) -> int | None:
    """Stream one entry to disk, never trusting the header's size; None when the entry is damaged."""
    written = 0
    try:
        with archive.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size or written > settings.MAX_FILE_BYTES:
                    raise ValueError("entry larger than its header says")
                _check_ratio(zip_name, info.filename, written, info.compress_size)
                dst.write(chunk)
    except TLError:
        target.unlink(missing_ok=True)
        raise
    except OSError as err:
        target.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise DataError("The disk is full while unpacking the zip; free some space and try again.") from err
        return None
    except Exception:  # noqa: BLE001 - CRC errors, bad compression, lying headers
        target.unlink(missing_ok=True)
        return None
    return written

