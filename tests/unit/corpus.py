"""Generates the bad-input corpus (and good data) in temporary folders. Nothing binary is committed.

Image kinds are bytes factories; source kinds build a folder, zip or CSV under a given folder.
"""
from __future__ import annotations

import io
import itertools
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BIRDS5 = SHARED / "datasets" / "birds5"
_colours = itertools.count(1)


# ---------------------------------------------------------------- image bytes

def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def unique_png(size: int = 8) -> bytes:
    """A small RGB PNG whose content differs from every other call's (no accidental duplicates)."""
    n = next(_colours)
    return encode(Image.new("RGB", (size, size), (n % 256, (n // 256) % 256, 77)), "PNG")


def jpeg(size: tuple[int, int] = (16, 16), colour=(200, 30, 30), **kw) -> bytes:
    return encode(Image.new("RGB", size, colour), "JPEG", **kw)


def truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=95)
    return data[: len(data) // 2]


def noise_png(size: int = 64) -> bytes:
    """A PNG that does not compress (random pixels)."""
    return encode(Image.fromarray(np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8)), "PNG")


def png16() -> bytes:
    arr = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    return encode(Image.fromarray(arr), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG")


def palette_png_transparent() -> bytes:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 1)
    return encode(img, "PNG", transparency=0)


def la_png() -> bytes:
    img = Image.new("LA", (2, 1))
    img.putpixel((0, 0), (0, 0))
    img.putpixel((1, 0), (0, 255))
    return encode(img, "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def float_tiff() -> bytes:
    return encode(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)), "TIFF")


def big_photo() -> bytes:
    """A 6000×4000 JPEG (24 megapixels), cheap to encode because it is flat."""
    return encode(Image.new("RGB", (6000, 4000), (90, 140, 60)), "JPEG", quality=70)


def exif_rotated_jpeg() -> bytes:
    """Stored 40×20, left half red and right half blue, EXIF orientation 6 (displayed 20×40, red on top)."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(img, "JPEG", exif=exif.tobytes(), quality=95)


def png_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose IHDR claims width×height RGB with a tiny zlib stream: it must never be decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
HTML = b"<!DOCTYPE html><html><body>Not found</body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120


@dataclass
class ImageCase:
    """One image kind. ``reason`` is a substring of the refusal reason; None means usable."""

    kind: str
    filename: str
    make: Callable[[], bytes]
    reason: str | None = None
    fix: str = ""                       # a word the full message's fix must contain
    patch: dict = field(default_factory=dict)


IMAGE_CASES = [
    ImageCase("truncated-jpeg", "cut.jpg", truncated_jpeg, "truncated or damaged", "again"),
    ImageCase("zero-byte", "empty.jpg", lambda: b"", "empty", "again"),
    ImageCase("text-named-jpg", "notes.jpg", lambda: b"just some text\n" * 5, "not an image file", "JPEG"),
    ImageCase("html-named-png", "page.png", lambda: HTML, "not an image file", "JPEG"),
    ImageCase("pdf", "scan.pdf", lambda: PDF, "not an image file", "JPEG"),
    ImageCase("elf-executable", "tool.jpg", lambda: ELF, "not an image file", "JPEG"),
    ImageCase("svg", "logo.svg", lambda: SVG, "SVG", "PNG"),
    ImageCase("heic", "IMG_0001.HEIC", lambda: HEIC, "HEIC images are not supported", "convert it to JPEG or PNG"),
    ImageCase("avif", "pic.avif", lambda: AVIF, "AVIF images are not supported", "convert it to JPEG or PNG"),
    ImageCase("png-bomb-30000", "bomb.png", png_header_bomb, "too large", "resize"),
    ImageCase("png-over-pixel-limit", "huge.png", lambda: png_header_bomb(8000, 8000), "8000×8000", "resize"),
    ImageCase("file-over-size-cap", "big.png", noise_png, "too large", "resize", patch={"MAX_FILE_BYTES": 2000}),
    ImageCase("png16", "deep.png", png16),
    ImageCase("cmyk-jpeg", "print.jpg", cmyk_jpeg),
    ImageCase("palette-transparent", "icon.png", palette_png_transparent),
    ImageCase("la-png", "la.png", la_png),
    ImageCase("animated-gif", "anim.gif", animated_gif),
    ImageCase("float-tiff", "depth.tif", float_tiff),
    ImageCase("photo-6000x4000", "photo.jpg", big_photo),
    ImageCase("exif-rotated", "rotated.jpg", exif_rotated_jpeg),
    ImageCase("png-named-jpg", "actually_png.jpg", lambda: unique_png(12)),
    ImageCase("one-pixel", "dot.png", lambda: encode(Image.new("RGB", (1, 1), (5, 6, 7)), "PNG")),
    ImageCase("webp", "pic.webp", lambda: encode(Image.new("RGB", (9, 9), (1, 200, 3)), "WEBP")),
    ImageCase("bmp-8bit", "old.bmp", lambda: encode(Image.new("L", (9, 9), 90), "BMP")),
]


# ---------------------------------------------------------------- sources

def write_classes(root: Path, spec: dict[str, int]) -> Path:
    """``root/<class>/img_<i>.png`` with distinct content; returns root."""
    for label, count in spec.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / label / f"img_{i}.png").write_bytes(unique_png())
    return root


def good_entries(prefix: str = "", spec: dict[str, int] | None = None) -> list[tuple[str, bytes]]:
    spec = spec or {"cat": 3, "dog": 3}
    return [(f"{prefix}{label}/img_{i}.png", unique_png()) for label, n in spec.items() for i in range(n)]


def make_zip(path: Path, entries: list, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Entries are (name, bytes) or (ZipInfo, bytes); names are written as given (even unsafe ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def make_zip_bytes(entries: list) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def crc_damaged_zip(path: Path) -> Path:
    """A stored entry whose bytes no longer match its CRC."""
    payload = unique_png(16)
    make_zip(path, good_entries() + [("cat/damaged.png", payload)], zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.rfind(payload)
    raw[at + len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def nul_name_zip(path: Path) -> Path:
    """An entry whose name starts with a NUL byte (zipfile reads its name as "")."""
    make_zip(path, good_entries() + [("cat/Z.png", unique_png())])
    path.write_bytes(path.read_bytes().replace(b"cat/Z.png", b"\x00at/Z.png"))
    return path


def deep_folder(root: Path, depth: int = 30) -> Path:
    write_classes(root, {"cat": 3, "dog": 3})
    deep = root / "cat" / Path(*[f"d{i}" for i in range(depth)])
    deep.mkdir(parents=True)
    (deep / "deep.png").write_bytes(unique_png())
    return root


def deep_class_one_file(root: Path, depth: int = 30) -> Path:
    """A class whose only image lies 30 folders deep."""
    write_classes(root, {"cat": 3, "dog": 3})
    deep = root / "owl" / Path(*[f"d{i}" for i in range(depth)])
    deep.mkdir(parents=True)
    (deep / "deep.png").write_bytes(unique_png())
    return root


def junk_folder(root: Path) -> Path:
    write_classes(root, {"cat": 3, "dog": 3})
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._img_0.png").write_bytes(b"\x00\x05\x16\x07apple double")
    (root / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "cat" / "._img_1.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "dog" / "desktop.ini").write_text("[.ShellClassInfo]")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.png").write_bytes(unique_png())
    return root


def duplicate_folder(root: Path) -> Path:
    write_classes(root, {"cat": 3, "dog": 3})
    same = unique_png()
    (root / "cat" / "same.png").write_bytes(same)
    (root / "dog" / "same_again.png").write_bytes(same)
    return root


def csv_source(root: Path, text: str, encoding: str = "utf-8", images: dict[str, int] | None = None) -> Path:
    write_classes(root / "img", images or {"cat": 3, "dog": 3})
    path = root / "labels.csv"
    path.write_bytes(text.encode(encoding))
    return path


def csv_rows(delimiter: str = ",", extra: list[tuple[str, str]] = ()) -> str:
    rows = [f"path{delimiter}label"]
    rows += [f"img/{label}/img_{i}.png{delimiter}{label}" for label in ("cat", "dog") for i in range(3)]
    rows += [f"{p}{delimiter}{lab}" for p, lab in extra]
    return "\n".join(rows) + "\n"


def snapshot(root: Path, exclude: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` outside ``exclude``: path -> (size, mtime_ns)."""
    found = {}
    exclude = exclude.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).resolve()
        if here == exclude or exclude in here.parents:
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            st = os.lstat(Path(dirpath) / name)
            found[str(Path(dirpath) / name)] = (st.st_size, st.st_mtime_ns)
    return found


def assert_tf_safe(path: str, max_side: int = 1024) -> None:
    """The file is something tf.io.decode_image(channels=3, expand_animations=False) reads as we do."""
    with Image.open(path) as img:
        assert img.format in {"JPEG", "PNG", "BMP", "GIF"}, (path, img.format)
        assert img.mode in {"RGB", "L"}, (path, img.mode)
        assert max(img.size) <= max_side, (path, img.size)


# ---------------------------------------------------------------- whole-source kinds

ABS_TARGET = Path("/tmp") / f"tls_abs_escape_{os.getpid()}.png"


@dataclass
class SourceCase:
    """A bad source. ``build(root)`` returns a folder, zip or CSV path, or a dict for per-class uploads."""

    kind: str
    build: Callable[[Path], object]
    error: list[str] = field(default_factory=list)              # DataError must contain all of these
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file substring, reason substring)
    warning: str = ""
    kept: int | None = 6
    classes: list[str] | None = None
    patch: dict = field(default_factory=dict)


def _zip_case(extra: Callable[[], list]) -> Callable[[Path], Path]:
    return lambda root: make_zip(root / "data.zip", good_entries() + extra())


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _symlink_out(root: Path) -> Path:
    write_classes(root / "d", {"cat": 3, "dog": 3})
    (root / "outside.png").write_bytes(unique_png())
    (root / "d" / "cat" / "link.png").symlink_to(root / "outside.png")
    return root / "d"


def _named(root: Path) -> Path:
    return write_classes(root / "d", {"my cats": 3, "Ünïcödé 猫": 3, "<img src=x onerror=alert(1)>": 3})


NAMES = ["<img src=x onerror=alert(1)>", "my cats", "Ünïcödé 猫"]

SOURCE_CASES = [
    SourceCase("zip-path-traversal", _zip_case(lambda: [("../../evil.png", unique_png()), (str(ABS_TARGET), unique_png()),
                                                ("C:/evil.png", unique_png()), ("cat/../../evil2.png", unique_png())]),
               skipped=[("../../evil.png", "unsafe path"), ("tls_abs_escape", "unsafe path"),
                        ("C:/evil.png", "unsafe path"), ("evil2.png", "unsafe path")]),
    SourceCase("zip-symlink-entry", _zip_case(lambda: [(symlink_info("cat/link.png"), b"/etc/passwd")]),
               skipped=[("cat/link.png", "symbolic link")]),
    SourceCase("zip-bomb-ratio", _zip_case(lambda: [("cat/bomb.bmp", b"\0" * (20 << 20))]),
               error=["zip bomb", "cat/bomb.bmp", "200"], kept=None),
    SourceCase("zip-over-total-cap", _zip_case(lambda: [("cat/big.png", noise_png())]), error=["TLS_MAX_ZIP_TOTAL_MB"],
               kept=None, patch={"MAX_ZIP_TOTAL_BYTES": 4000}),
    SourceCase("zip-too-many-files", _zip_case(lambda: []), error=["6 files", "TLS_MAX_ZIP_FILES"], kept=None,
               patch={"MAX_ZIP_FILES": 5}),
    SourceCase("zip-inside-zip", _zip_case(lambda: [("cat/inner.zip", make_zip_bytes(good_entries()))]),
               skipped=[("inner.zip", "a zip inside the zip: unpack it first")]),
    SourceCase("zip-empty", lambda root: make_zip(root / "empty.zip", []), error=["empty.zip", "empty"], kept=None),
    SourceCase("zip-random-bytes", lambda root: (_mkdir(root) / "photos.zip", (root / "photos.zip").write_bytes(
        np.random.default_rng(1).bytes(4096)))[0], error=["photos.zip", "is not a valid zip file"], kept=None),
    SourceCase("zip-damaged-entry", lambda root: crc_damaged_zip(root / "d.zip"),
               skipped=[("cat/damaged.png", "damaged")]),
    SourceCase("zip-nul-entry-name", lambda root: nul_name_zip(root / "nul.zip"), skipped=[("", "unsafe path")]),
    SourceCase("zip-macosx-and-hidden", _zip_case(lambda: [("__MACOSX/cat/._img_0.png", b"\0\5\x16\7"),
                                                   ("cat/.DS_Store", b"Bud1"), ("dog/Thumbs.db", b"x"),
                                                   ("dog/desktop.ini", b"x")])),
    SourceCase("zip-4000-tiny-files", lambda root: make_zip(root / "many.zip", good_entries(
        "", {"a": 2000, "b": 2000})), kept=4000),
    SourceCase("folder-30-deep", lambda root: deep_folder(root / "d"), kept=7),
    SourceCase("folder-macosx-and-hidden", lambda root: junk_folder(root / "d")),
    SourceCase("folder-same-image-two-classes", lambda root: duplicate_folder(root / "d"), kept=8,
               warning="leaks between splits"),
    SourceCase("folder-class-with-one-image", lambda root: write_classes(root / "d", {"cat": 4, "dog": 1}),
               kept=5, classes=["cat", "dog"], warning="Class 'dog' has 1 image, fewer than the 3 needed"),
    SourceCase("folder-class-30-deep-one-file", lambda root: deep_class_one_file(root / "d"), kept=7,
               classes=["cat", "dog", "owl"], warning="Class 'owl' has 1 image"),
    SourceCase("folder-classes-differ-by-case", lambda root: write_classes(root / "d", {"Cat": 3, "cat": 1, "dog": 3}),
               kept=7, classes=["Cat", "cat", "dog"], warning="Class 'cat' has 1 image"),
    SourceCase("folder-class-name-trailing-space", lambda root: write_classes(root / "d", {"cat ": 2, "cat": 3,
                                                                                            "dog": 3}),
               kept=8, classes=["cat", "cat ", "dog"], warning="Class 'cat ' has 2 images"),
    SourceCase("folder-single-class", lambda root: write_classes(root / "d", {"cat": 4}),
               error=["At least 2 classes are needed", "1 class", "'cat'"], kept=None),
    SourceCase("folder-empty", lambda root: _mkdir(root / "d"), error=["2 classes", "0 classes"], kept=None),
    SourceCase("folder-class-names-kept-exactly", _named, classes=NAMES, kept=9),
    SourceCase("folder-loose-file", lambda root: (write_classes(root / "d", {"cat": 3, "dog": 3}),
               (root / "d" / "README.txt").write_text("hi"))[0], skipped=[("README.txt", "not inside a class folder")]),
    SourceCase("folder-symlink-outside", _symlink_out, skipped=[("cat/link.png", "outside the folder")]),
    SourceCase("csv-missing-paths", lambda root: csv_source(root, csv_rows(extra=[("img/cat/gone.png", "cat")])),
               skipped=[("gone.png", "file not found")]),
    SourceCase("csv-bom", lambda root: csv_source(root, "\ufeff" + csv_rows())),
    SourceCase("csv-semicolon", lambda root: csv_source(root, csv_rows(";"))),
    SourceCase("csv-path-escapes-root", lambda root: csv_source(root, csv_rows(extra=[("../../../etc/passwd", "cat")])),
               skipped=[("etc/passwd", "outside the image folder")]),
    SourceCase("csv-empty-label", lambda root: csv_source(root, csv_rows(extra=[("img/cat/img_0.png", "")])),
               skipped=[("img_0.png", "has no label")]),
    SourceCase("csv-no-path-column", lambda root: csv_source(root, "file name;label\nx.png;cat\n"),
               error=["'path' column", "file name"], kept=None),
    SourceCase("upload-zip-and-junk", lambda root: {"cat": [(f"{i}.png", unique_png()) for i in range(3)] + [
        ("more.zip", make_zip_bytes(good_entries())), ("Thumbs.db", b"x")],
        "dog": [(f"{i}.png", unique_png()) for i in range(3)]}, skipped=[("more.zip", "import it as a zip")]),
]
