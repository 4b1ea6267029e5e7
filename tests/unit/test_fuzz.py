"""Property tests: whatever bytes or text arrive, only TLError subclasses escape (about 20 s in all)."""
from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

from tlcore import data, images  # noqa: E402
from tlcore.errors import ImageError, TLError  # noqa: E402

SEEDS = [
    corpus.jpeg((24, 16)), corpus.unique_png(12), corpus.png16(), corpus.animated_gif(), corpus.float_tiff(),
    corpus.cmyk_jpeg(), corpus.exif_rotated_jpeg(), corpus.la_png(), corpus.encode(Image.new("RGB", (9, 9)), "BMP"),
    corpus.encode(Image.new("RGB", (9, 9)), "WEBP"), corpus.png_header_bomb(),
]
ZIP_SEED = corpus.make_zip_bytes(corpus.good_entries("top/", {"cat": 3, "dog": 3}))
# TLS_FUZZ_SCALE=20 runs twenty times the examples with fresh randomness (a longer, exploratory run).
SCALE = float(os.environ.get("TLS_FUZZ_SCALE", "1"))
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=SCALE == 1, database=None)


def n(examples: int) -> int:
    return max(1, int(examples * SCALE))


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes flipped, a slice removed or cut short."""
    blob = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(blob) - 1))
        blob[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(blob)))
        blob = blob[:start] + blob[start + draw(st.integers(0, 64)):]
    if draw(st.booleans()):
        blob = blob[: draw(st.integers(0, len(blob)))]
    return bytes(blob)


@settings(max_examples=n(1500), **FAST)
@given(st.one_of(st.binary(max_size=600), mutated(SEEDS)))
def test_load_rgb_only_raises_image_error(blob):
    try:
        img = images.load_rgb(blob, name="fuzz.jpg")
    except ImageError as err:
        assert str(err).startswith("fuzz.jpg: ") and err.reason
    else:
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1
        assert images.to_array(img, 8).shape == (8, 8, 3)


@settings(max_examples=n(300), **FAST)
@given(st.one_of(st.binary(max_size=400), mutated([ZIP_SEED])))
def test_from_zip_only_raises_tl_error(blob):
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in" / "data.zip"
        source.parent.mkdir()
        source.write_bytes(blob)
        dest = Path(tmp) / "ws"
        try:
            ds = data.from_zip(source, dest, val_split=0.0, test_split=0.0)
        except TLError:
            pass
        else:
            assert all(Path(s.path).is_relative_to(dest) for s in ds.samples)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["in", "ws"]
        assert [p.name for p in (Path(tmp) / "in").iterdir()] == ["data.zip"]


def test_zip_seed_is_valid():
    assert zipfile.is_zipfile(io.BytesIO(ZIP_SEED))


CSV_LINE = st.lists(st.sampled_from(["img/cat/img_0.png", "img/dog/img_1.png", "cat", "dog", "", "../x", "/etc/passwd",
                                     '"', ";", ",", "\t", "path", "label", "ü", "\ufeff", "\x00"]), max_size=6)


@settings(max_examples=n(150), **FAST)
@given(st.one_of(st.text(max_size=300),
                 st.lists(CSV_LINE, max_size=12).map(lambda rows: "path,label\n" + "\n".join("".join(r) for r in rows))))
def test_from_csv_only_raises_tl_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus.write_classes(root / "img", {"cat": 2, "dog": 2})
        (root / "l.csv").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            data.from_csv(root / "l.csv", root / "ws", val_split=0.0, test_split=0.0)
        except TLError:
            pass
