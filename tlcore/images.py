"""Reading user images safely with PIL (no TensorFlow here).

Every failure is an :class:`~tlcore.errors.ImageError` with a short ``reason`` for the data report.
Formats are decided by content, never by the file name's extension.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tlcore import settings
from tlcore.errors import ImageError, TLError

SUPPORTED_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# PIL plugins we let parse user bytes (JPEG also opens MPO, the multi-picture JPEG that cameras write).
_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")
Image.init()  # register every plugin so `formats=` can name them
# PIL warns above its own 89 MP limit; we refuse anything over settings.MAX_IMAGE_PIXELS ourselves.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Format -> PIL raw modes that tf.io.decode_image(channels=3) reads exactly as PIL does.
_TF_SAFE = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "L"}, "BMP": {"BGR", "BGRX"}, "GIF": {"L", "P"}}
_ORIENTATION = 0x0112
_SNIFF_BYTES = 512

_FIX_FORMAT = "Remove it; only JPEG, PNG, BMP, GIF, WebP and TIFF images can be used."
_FIX_CONVERT = "Convert it to JPEG or PNG and add it again."
_FIX_AGAIN = "Export or download it again, or remove it."
_FIX_RESIZE = "Resize it to a smaller size and add it again."

Source = Path | str | bytes


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect` learned. ``width``/``height`` are as displayed (after EXIF rotation)."""

    width: int
    height: int
    format: str
    mode: str
    needs_normalising: bool


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels" if pixels >= 1e6 else f"{pixels} pixels"


def _sniff(head: bytes, name: str) -> None:
    """Refuse well-known non-image or unsupported content from its first bytes."""
    if head[4:8] == b"ftyp":
        brand = head[8:12].lower()
        if brand.startswith(b"avi"):
            raise ImageError(name, "AVIF images are not supported", _FIX_CONVERT)
        if brand in {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"heif"}:
            raise ImageError(name, "HEIC images are not supported", _FIX_CONVERT)
        raise ImageError(name, "not an image file (it is a video or HEIC/MP4 file)", _FIX_CONVERT)
    lower = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in head.lower() and (lower.startswith(b"<svg") or lower.startswith(b"<?xml")):
        raise ImageError(name, "SVG drawings are not supported", "Export it as PNG and add it again.")
    kinds = [
        (b"%PDF", "a PDF document"), (b"\x7fELF", "a program"), (b"MZ", "a program"),
        (b"PK\x03\x04", "a zip archive"), (b"8BPS", "a Photoshop file"), (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 file"),
    ]
    for magic, kind in kinds:
        if head.startswith(magic):
            raise ImageError(name, f"not an image file (it is {kind})", _FIX_FORMAT)
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise ImageError(name, "not an image file (it is a web page)", _FIX_FORMAT)


def _bomb_error(name: str, width: int = 0, height: int = 0, pixels: int = 0) -> ImageError:
    limit = _megapixels(settings.MAX_IMAGE_PIXELS)
    size = f"{width}×{height} pixels" if width else _megapixels(pixels)
    return ImageError(name, f"too large ({size}; the limit is {limit})", _FIX_RESIZE)


def _classify(err: Exception, name: str) -> ImageError:
    """Turn whatever PIL raised into an ImageError with a plain reason."""
    if isinstance(err, ImageError):
        return err
    if isinstance(err, Image.DecompressionBombError):
        match = re.search(r"\((\d+) pixels\)", str(err))
        return _bomb_error(name, pixels=int(match.group(1)) if match else 0)
    if isinstance(err, Image.UnidentifiedImageError):
        return ImageError(name, "not an image file", _FIX_FORMAT)
    if isinstance(err, ValueError) and "conversion from" in str(err):
        return ImageError(name, "uses a colour mode that is not supported", _FIX_CONVERT)
    if isinstance(err, MemoryError):
        return ImageError(name, "too large to decode", _FIX_RESIZE)
    return ImageError(name, "the file is truncated or damaged", _FIX_AGAIN)


def _label(source: Source, name: str | None) -> str:
    return name or ("image" if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).name)


def read_bytes(source: Source, name: str | None = None) -> bytes:
    """The bytes of an image file (or the bytes given), refusing empty files and files over MAX_FILE_BYTES."""
    label = _label(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > settings.MAX_FILE_BYTES:
                raise ImageError(label, too_big_reason(size), _FIX_RESIZE)
            with open(path, "rb") as handle:
                data = handle.read(settings.MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ImageError(label, "the file cannot be read", "Check that it exists and can be opened.") from err
    if not data:
        raise ImageError(label, "the file is empty (0 bytes)", _FIX_AGAIN)
    if len(data) > settings.MAX_FILE_BYTES:
        raise ImageError(label, too_big_reason(len(data)), _FIX_RESIZE)
    return data


def _size_text(size: int) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.0f} {unit}"
    return f"{size} bytes"


def too_big_reason(size: int) -> str:
    """The report reason for a file of ``size`` bytes over MAX_FILE_BYTES."""
    return f"the file is too large ({_size_text(size)}; the limit is {_size_text(settings.MAX_FILE_BYTES)})"


def _open(data: bytes, name: str, draft_side: int | None = None) -> tuple[Image.Image, dict]:
    """Open and fully decode the first frame; returns the image (original mode) and facts about the file."""
    _sniff(data[:_SNIFF_BYTES], name)
    try:
        img = Image.open(io.BytesIO(data), formats=list(_FORMATS))
        width, height = img.size
        if width * height > settings.MAX_IMAGE_PIXELS:
            raise _bomb_error(name, width, height)
        if width < 1 or height < 1:
            raise ImageError(name, "the image has no pixels", _FIX_AGAIN)
        facts = _facts(img, data)
        if draft_side and img.format in {"JPEG", "MPO"} and max(width, height) > 2 * draft_side:
            img.draft(None, (draft_side, draft_side))  # DCT-scaled decode: fast and small for big photos
        img.seek(0)
        img.load()
        return img, facts
    except Exception as err:  # noqa: BLE001 - PIL plugins raise many kinds; all mean "cannot use"
        raise _classify(err, name) from err


def _facts(img: Image.Image, data: bytes) -> dict:
    """What the header of an opened (not yet decoded) image says, for :func:`_needs_normalising`."""
    tile = img.tile[0] if img.tile else None
    args = tile.args if tile is not None else None
    rawmode = args[0] if isinstance(args, tuple) and args else args
    try:
        orientation = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF: ignore it, like browsers do
        orientation = 1
    width, height = img.size
    facts = {
        "format": img.format or "", "rawmode": rawmode, "orientation": orientation,
        "animated": bool(getattr(img, "is_animated", False)), "width": width, "height": height,
        "compression": img.info.get("compression", 0),
    }
    if img.format in {"JPEG", "MPO"}:
        facts["ends_ok"] = data.rstrip(b"\x00\r\n \t").endswith(b"\xff\xd9")
    return facts


def _to_rgb(img: Image.Image, orientation: object) -> Image.Image:
    """Any PIL mode → 8-bit RGB, EXIF-rotated; alpha is composited on white; 16-bit and float are scaled, not clipped."""
    if orientation not in (None, 1):
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode.startswith("I;16") or mode in {"I", "F"}:
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(arr.min()), float(arr.max())
        if mode.startswith("I;16") or (mode == "I" and 255 < high <= 65535 and low >= 0):
            arr = arr / 257.0
        elif mode == "F" and low >= 0 and high <= 1.0:
            arr = arr * 255.0
        elif low < 0 or high > 255:
            arr = (arr - low) * (255.0 / (high - low)) if high > low else arr * 0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    elif mode in {"P", "PA", "LA", "La", "RGBa"}:
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def load_rgb(source: Source, name: str | None = None) -> Image.Image:
    """Decode an image file (path or bytes) to an RGB image: EXIF-rotated, first frame, any mode converted."""
    label = _label(source, name)
    img, facts = _open(read_bytes(source, label), label)
    try:
        rgb = _to_rgb(img, facts["orientation"])
        return rgb.copy() if rgb is img else rgb
    except Exception as err:  # noqa: BLE001
        raise _classify(err, label) from err


def tf_readable(data: bytes) -> bool:
    """True when TensorFlow's decoder reads these bytes as training does: a file :func:`inspect` keeps as it is.

    Only the header is read (no decode). False means: decode with :func:`training_rgb` (which also says what is
    wrong with a bad file). Prediction uses it to take TensorFlow's fast path with the training pixels.
    """
    try:
        _sniff(data[:_SNIFF_BYTES], "image")
        img = Image.open(io.BytesIO(data), formats=list(_FORMATS))
        width, height = img.size
        if not 0 < width * height <= settings.MAX_IMAGE_PIXELS:
            return False
        return not _needs_normalising(img, _facts(img, data))
    except Exception:  # noqa: BLE001 - anything odd goes the careful way
        return False


def training_rgb(source: Source, name: str | None = None) -> Image.Image:
    """The RGB image training sees for a file: :func:`load_rgb`, then downscaled as :func:`inspect` normalises an
    import (longer side at most ``settings.NORMALISE_MAX_SIDE``); the same as :func:`load_rgb` for smaller images."""
    label = _label(source, name)
    side = settings.NORMALISE_MAX_SIDE
    img, facts = _open(read_bytes(source, label), label, draft_side=side)
    try:
        rgb = _to_rgb(img, facts["orientation"])
        if max(rgb.size) > side:
            rgb.thumbnail((side, side), Image.Resampling.BICUBIC)
        return rgb.copy() if rgb is img else rgb
    except Exception as err:  # noqa: BLE001
        raise _classify(err, label) from err


def _needs_normalising(img: Image.Image, facts: dict) -> bool:
    return not (
        img.mode in {"RGB", "L"}
        and facts["rawmode"] in _TF_SAFE.get(facts["format"], ())
        and facts["orientation"] in (None, 1)
        and max(facts["width"], facts["height"]) <= settings.NORMALISE_MAX_SIDE
        and not facts["animated"]
        and facts.get("ends_ok", True)
        and not (facts["format"] == "BMP" and facts["compression"] != 0)
    )


def inspect(source: Source, name: str | None = None, normalise_to: Path | None = None) -> ImageInfo:
    """Fully decode once and say whether the file must be re-encoded before TensorFlow reads it.

    With ``normalise_to``, an image that needs normalising is written there as an RGB PNG,
    downscaled so its longer side is at most ``settings.NORMALISE_MAX_SIDE``.
    """
    label = _label(source, name)
    data = read_bytes(source, label)
    side = settings.NORMALISE_MAX_SIDE if normalise_to is not None else None
    img, facts = _open(data, label, draft_side=side)
    del data
    needs = _needs_normalising(img, facts)
    width, height = facts["width"], facts["height"]
    if facts["orientation"] in (5, 6, 7, 8):
        width, height = height, width
    info = ImageInfo(width, height, facts["format"], img.mode, needs)
    if needs and normalise_to is not None:
        try:
            rgb = _to_rgb(img, facts["orientation"])
            if max(rgb.size) > settings.NORMALISE_MAX_SIDE:
                rgb.thumbnail((settings.NORMALISE_MAX_SIDE, settings.NORMALISE_MAX_SIDE), Image.Resampling.BICUBIC)
            rgb.save(normalise_to, "PNG", compress_level=3)
        except Exception as err:  # noqa: BLE001
            raise _classify(err, label) from err
    return info


def to_array(img: Image.Image, size: int | None = None) -> np.ndarray:
    """An RGB PIL image as a uint8 HxWx3 array, bilinear-resized to ``size``×``size`` when given."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if size is not None:
        img = img.resize((int(size), int(size)), Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)


def thumbnail(source: Source, size: int, name: str | None = None) -> np.ndarray | None:
    """A small RGB thumbnail (uint8 array, at most ``size`` pixels a side) of an image; None when it cannot be read."""
    try:
        img = load_rgb(source, name)
    except TLError:
        return None
    img.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img)
