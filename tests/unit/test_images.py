"""tlcore.images: decoding, mode conversion, EXIF, refusals and the needs_normalising rule."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import images, settings  # noqa: E402
from tlcore.errors import ImageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def close(pixel, expected, tol=12):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected))


def test_no_tensorflow_or_streamlit_imported():
    code = ("import sys, tlcore.images, tlcore.data, tlcore.sample; "
            "bad = [m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("as_path", [False, True], ids=["bytes", "path"])
def test_plain_jpeg_from_bytes_and_path(tmp_path, as_path):
    data = corpus.jpeg((20, 10), (200, 30, 30))
    source = data
    if as_path:
        source = tmp_path / "a.jpg"
        source.write_bytes(data)
    img = images.load_rgb(source)
    assert img.mode == "RGB" and img.size == (20, 10)
    assert close(img.getpixel((5, 5)), (200, 30, 30))


def test_sixteen_bit_png_is_scaled_not_clipped():
    arr = images.to_array(images.load_rgb(corpus.png16()))
    assert arr.dtype == np.uint8 and arr.shape == (1, 4, 3)
    assert list(arr[0, :, 0]) == [0, 4, 128, 255]


def test_float_tiff_is_scaled():
    arr = images.to_array(images.load_rgb(corpus.float_tiff()))
    assert list(arr[0, :, 1]) == [0, 128, 255]


def test_palette_transparency_and_la_composite_on_white():
    img = images.load_rgb(corpus.palette_png_transparent())
    assert img.getpixel((0, 0)) == (255, 0, 0) and img.getpixel((1, 0)) == (255, 255, 255)
    la = images.load_rgb(corpus.la_png())
    assert la.getpixel((0, 0)) == (255, 255, 255) and la.getpixel((1, 0)) == (0, 0, 0)


def test_cmyk_becomes_rgb():
    img = images.load_rgb(corpus.cmyk_jpeg())
    r, g, b = img.getpixel((8, 8))
    assert img.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_animated_gif_gives_first_frame():
    img = images.load_rgb(corpus.animated_gif())
    assert close(img.getpixel((4, 4)), (255, 0, 0))
    assert images.inspect(corpus.animated_gif()).needs_normalising


def test_exif_orientation_is_honoured():
    img = images.load_rgb(corpus.exif_rotated_jpeg())
    assert img.size == (20, 40)
    assert close(img.getpixel((10, 5)), (255, 0, 0), 40)      # stored left half is displayed on top
    assert close(img.getpixel((10, 35)), (0, 0, 255), 40)
    info = images.inspect(corpus.exif_rotated_jpeg())
    assert (info.width, info.height, info.needs_normalising) == (20, 40, True)


def test_png_named_jpg_is_read_by_content(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(corpus.unique_png(7))
    assert images.inspect(path).format == "PNG"
    assert images.load_rgb(path).size == (7, 7)


@pytest.mark.parametrize("make, needs", [
    (lambda: corpus.jpeg(), False),
    (lambda: corpus.encode(Image.new("L", (9, 9), 5), "JPEG"), False),
    (lambda: corpus.unique_png(), False),
    (lambda: corpus.encode(Image.new("L", (9, 9), 5), "PNG"), False),
    (lambda: corpus.encode(Image.new("RGB", (9, 9)), "BMP"), False),
    (lambda: corpus.encode(Image.new("RGBA", (9, 9)), "PNG"), True),
    (lambda: corpus.encode(Image.new("RGB", (9, 9)), "WEBP"), True),
    (lambda: corpus.encode(Image.new("RGB", (9, 9)), "TIFF"), True),
    (lambda: corpus.encode(Image.new("RGB", (9, 9)), "GIF"), True),
    (lambda: corpus.encode(Image.new("L", (9, 9)), "BMP"), True),
    (lambda: corpus.jpeg() + b"trailing junk", True),            # bytes after the end-of-image marker
    (lambda: corpus.jpeg((1100, 20)), True),                     # larger than NORMALISE_MAX_SIDE
    (corpus.png16, True), (corpus.cmyk_jpeg, True), (corpus.la_png, True), (corpus.float_tiff, True),
], ids=["jpeg", "jpeg-L", "png", "png-L", "bmp24", "rgba", "webp", "tiff", "gif", "bmp8", "jpeg-trailing-junk",
        "wide", "png16", "cmyk", "la", "float"])
def test_needs_normalising_rule(make, needs):
    assert images.inspect(make()).needs_normalising is needs


def test_normalise_to_writes_rgb_png_within_max_side(tmp_path):
    out = tmp_path / "n.png"
    info = images.inspect(corpus.jpeg((3000, 1500)), normalise_to=out)
    assert info.needs_normalising and (info.width, info.height) == (3000, 1500)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (1024, 512)
    ok = tmp_path / "ok.png"
    assert not images.inspect(corpus.jpeg(), normalise_to=ok).needs_normalising and not ok.exists()


def test_large_photo_is_fast_and_bounded(tmp_path):
    import resource
    import time
    data = corpus.big_photo()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.process_time()
    info = images.inspect(data, normalise_to=tmp_path / "big.png")
    assert time.process_time() - start < 10
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 400 * 1024   # KiB on Linux
    assert (info.width, info.height) == (6000, 4000)
    with Image.open(tmp_path / "big.png") as img:
        assert img.size == (1024, 683)


@pytest.mark.parametrize("case", [c for c in corpus.IMAGE_CASES if c.reason], ids=lambda c: c.kind)
def test_refusals_name_the_file_and_the_fix(case, monkeypatch, tmp_path):
    for key, value in case.patch.items():
        monkeypatch.setattr(settings, key, value)
    path = tmp_path / case.filename
    path.write_bytes(case.make())
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageError) as caught:
            images.load_rgb(source, name=case.filename)
        assert case.reason.lower() in caught.value.reason.lower()
        message = str(caught.value)
        assert message.startswith(case.filename) and case.fix.lower() in message.lower()


def test_bomb_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(settings, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="11×10 pixels"):
        images.inspect(corpus.encode(Image.new("RGB", (11, 10)), "PNG"))
    with pytest.raises(ImageError, match="too large"):     # PIL's own DecompressionBombError is caught too
        images.load_rgb(corpus.png_header_bomb())


def test_jpeg_without_end_marker_is_truncated():
    with pytest.raises(ImageError, match="truncated"):
        images.inspect(corpus.jpeg()[:-2], name="cut.jpg")


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="cannot be read"):
        images.load_rgb(tmp_path / "nope.png")


def test_to_array_resizes():
    img = images.load_rgb(corpus.jpeg((30, 20)))
    arr = images.to_array(img, size=16)
    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    assert images.to_array(Image.new("L", (3, 2))).shape == (2, 3, 3)
    assert ".png" in images.SUPPORTED_EXTS and ".jpg" in images.SUPPORTED_EXTS
