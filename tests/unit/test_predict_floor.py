"""Issue 11, part 3 and 4: the Predictor's parallel decode gives the training pixels, head epochs run several
batches per call with the same events and Stop, and the benchmark report writer (on fake figures)."""
from __future__ import annotations

import io
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT
from test_evaluate_predict import colour_model
from tlcore.calls import BATCH_SIZE, batched_call, decoder_input, over_images, prepare_images
from tlcore.callbacks import EventCallback
from tlcore.errors import ImageError
from tlcore.pipeline import decode_bytes, image_dataset, resize_pixels
from tlcore.predict import Predictor
from tlcore.tf_env import keras, tf

sys.path.insert(0, str(ROOT / "benchmarks"))
import _report  # noqa: E402


def _noisy(size=(50, 30), rgb=(200, 40, 30), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.array(rgb) + rng.normal(0, 30, (size[1], size[0], 3)), 0, 255).astype("uint8")


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    img = Image.fromarray(_noisy((40, 24), (30, 200, 40), seed=3))
    exif = Image.Exif()
    exif[0x0112] = 6                      # rotate 90° when displayed: PIL turns it, TensorFlow would not
    return _encoded(img, "JPEG", quality=92, exif=exif.tobytes())


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, object]:
    """Images of every kind the Predictor takes: files TensorFlow reads as training does, and ones it must not."""
    folder = tmp_path_factory.mktemp("kinds")
    rgb = Image.fromarray(_noisy())
    items: dict[str, object] = {
        "png": _encoded(rgb, "PNG"),
        "grey png": _encoded(rgb.convert("L"), "PNG"),
        "rgba png": _encoded(Image.fromarray(np.dstack([_noisy(seed=1), np.full((30, 50), 128, np.uint8)])), "PNG"),
        "gif": _encoded(rgb.convert("P"), "GIF"),
        "jpeg": _encoded(rgb, "JPEG", quality=90),
        "exif jpeg": _exif_rotated_jpeg(),
        "webp": _encoded(rgb, "WEBP", lossless=True),
        "pil": Image.fromarray(_noisy(seed=4)),
        "array": _noisy((20, 44), seed=5),
    }
    path = folder / "photo.png"
    path.write_bytes(items["png"])
    items["path"] = path
    return items


def _fast_pixels(item, size: int) -> np.ndarray:
    data, pixels = decoder_input(item, "x")
    return (decode_bytes(tf.constant(data), size) if data else resize_pixels(tf.convert_to_tensor(pixels), size)).numpy()


def test_the_fast_path_gives_the_pixels_of_training_and_of_the_current_path(kinds, tmp_path):
    for name, item in kinds.items():
        ours, current = _fast_pixels(item, 32), prepare_images([item], 32)[0]
        if name == "jpeg":   # TensorFlow decodes it, as training does; PIL's JPEG decoder rounds a few levels apart
            path = tmp_path / "photo.jpg"
            path.write_bytes(item)
            np.testing.assert_array_equal(ours, next(iter(image_dataset([str(path)], None, 32, 1)))[0].numpy())
            np.testing.assert_allclose(ours, current, atol=4.0)
        else:
            np.testing.assert_array_equal(ours, current, err_msg=name)


def test_predictor_probabilities_equal_the_current_path_streamed_and_single(kinds):
    model = colour_model()
    predictor = Predictor(model, ["red", "green", "blue"], 32)
    items = list(kinds.values()) * 5                       # 50 images: more than a batch, so they stream
    assert len(items) > BATCH_SIZE
    current = batched_call(model, prepare_images(items, 32))
    ours = predictor.probabilities(items)
    jpeg = np.array([isinstance(i, bytes) and i == kinds["jpeg"] for i in items])
    np.testing.assert_allclose(ours[~jpeg], current[~jpeg], atol=1e-5)
    np.testing.assert_allclose(ours[jpeg], current[jpeg], atol=0.02)      # the decoders' rounding, see above
    predictor.warm_up()
    for item in list(kinds.values())[:3]:                  # one image: decoded here, one traced call
        np.testing.assert_allclose(predictor.probabilities(item), batched_call(model, prepare_images([item], 32)),
                                   atol=1e-5)


def test_streamed_prediction_equals_the_training_pipeline_on_files(tmp_path):
    model = colour_model()
    paths = []
    for i in range(40):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_noisy((30 + i, 28), seed=i)).save(paths[-1])
    trained = np.concatenate([model(b, training=False).numpy() for b in image_dataset([str(p) for p in paths], None, 32)])
    np.testing.assert_allclose(Predictor(model, ["r", "g", "b"], 32).probabilities(paths), trained, atol=1e-5)


def test_a_big_photo_is_downscaled_as_the_import_does(tmp_path):
    from tlcore.images import inspect

    big = Image.fromarray(_noisy((1500, 900), seed=9))
    data = _encoded(big, "PNG")
    normalised = tmp_path / "normalised.png"
    assert inspect(data, "big.png", normalise_to=normalised).needs_normalising
    training = next(iter(image_dataset([str(normalised)], None, 64, 1)))[0].numpy()
    np.testing.assert_array_equal(_fast_pixels(data, 64), training)


def test_bad_images_are_reported_and_the_rest_predicted(kinds):
    model = colour_model()
    items = [kinds["png"]] * 20 + [b"not an image"] + [kinds["jpeg"]] * 20
    names = [f"{i}.png" for i in range(len(items))]
    errors: dict[int, ImageError] = {}
    out, order = over_images(model, items, 32, names=names, errors=errors)
    assert list(errors) == [20] and "20.png" in str(errors[20])
    assert order == [i for i in range(len(items)) if i != 20] and out.shape == (40, 3)
    with pytest.raises(ImageError, match="20.png"):
        over_images(model, items, 32, names=names)


def _head_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=4)
    return model


def test_several_batches_per_call_keep_the_events_and_stop_within_the_call():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 2, 40)
    events, stop = [], threading.Event()
    cb = EventCallback(lambda kind, **d: events.append((kind, d)), stop, phase="head", epoch_offset=0,
                       total_epochs=3, steps=10, monitor="loss", batch_interval=0.0)
    _head_model().fit(x, y, batch_size=4, epochs=3, callbacks=[cb], verbose=0, shuffle=False)
    batches = [d["batch"] for kind, d in events if kind == "batch"]
    assert batches == [4, 8, 10] * 3 and cb.epochs_done == 3        # 10 batches in calls of 4, 4 and 2

    class StopNow(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 4:
                stop.set()

    events.clear()
    cb = EventCallback(lambda kind, **d: events.append((kind, d)), stop, phase="head", epoch_offset=0,
                       total_epochs=3, steps=10, monitor="loss", batch_interval=0.0)
    _head_model().fit(x, y, batch_size=4, epochs=3, callbacks=[StopNow(), cb], verbose=0, shuffle=False)
    assert [d["batch"] for kind, d in events if kind == "batch"] == [4, 8]   # Stop seen after the call in progress
    assert cb.stopped_by_user and ("stopped_mid_epoch", {"phase": "head", "epoch": 1}) in events


def test_the_report_writer_fills_the_table_from_fake_figures(tmp_path):
    def fig(*values):
        return {"median": float(np.median(values)), "min": min(values), "max": max(values), "values": list(values)}

    figures = {"fe_cold": fig(1.08, 1.10, 1.12), "fe_second": fig(0.4, 0.5, 0.45), "predictor": fig(0.95),
               "rss_1000": fig(1000.0, 1010.0, 990.0), "finetune": None}
    scale = [{"images": 250, "seconds": fig(5.0, 5.2, 5.1)}, {"images": 1000, "seconds": fig(12.0, 12.5, 11.9)}]
    text = _report.render(figures, machine="fake CPU, 2 cores", command="python benchmarks/run_all.py",
                          date="2026-12-02", repeats=3, notes={"finetune": "bench_finetune_cache.py is missing"},
                          scale=scale, projection={"slope_ms": 9.3, "intercept_s": 2.7, "at_100k_s": 932.7},
                          breakdown=[("feature pass", 9.5)], extra=["no GPU was lent"])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    cold = next(v for k, v in rows.items() if k.startswith("feature extraction, 10 epochs"))
    assert "1.10 (1.08–1.12)" in cold and "≤ 1.15" in cold and cold.endswith("| yes |")
    assert next(v for k, v in rows.items() if k.startswith("a second run")).endswith("| **no** |")
    assert "0.95 |" in next(v for k, v in rows.items() if k.startswith("`Predictor`"))   # one repeat: no spread
    finetune = next(v for k, v in rows.items() if k.startswith("fine-tuning"))
    assert "not available — bench_finetune_cache.py is missing" in finetune and finetune.endswith("| – |")
    assert "1,000 MB" in next(v for k, v in rows.items() if k.startswith("peak RSS, feature extraction on 1,000"))
    assert "| 1,000 | 12.0 (11.9–12.5) | 83 |" in text and "projected for 100,000 images: 16 minutes" in text
    assert "fake CPU, 2 cores" in text and "- no GPU was lent" in text and "| feature pass | 9.50 |" in text
    assert set(_report.summary(figures).values()) <= {"yes", "**no**", "–"}
    out = _report.write(tmp_path / "performance.md", text)
    assert out.read_text(encoding="utf-8") == text and not list(tmp_path.glob("*.tmp"))
