"""Code to paste ("Use it in your app"), filled in with the run's file names, input size and class names.

One :class:`Snippet` per place the model goes: Python with Keras, with onnxruntime and with LiteRT, the browser
(onnxruntime-web), Android with LiteRT (Kotlin) and ``curl`` against ``python -m tlcore serve``. The Export page
shows them with the names its downloads get; the bundle writes them into ``snippets/`` with the bundle's names.
No TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .artifacts import load_labels, load_run_config

PHOTO = "my_photo.jpg"


@dataclass(frozen=True)
class Snippet:
    """One piece of code to paste: ``key`` (widget keys), ``title``, ``language`` (for highlighting), ``code``
    and ``filename`` (its name in the bundle's snippets/ folder)."""

    key: str
    title: str
    language: str
    code: str
    filename: str


def _python_keras(f: Callable[[str], str], size: int, labels: list[str]) -> str:
    return (f'''import keras
import numpy as np
from PIL import Image

model = keras.saving.load_model("{f("model.keras")}")
labels = open("{f("labels.txt")}", encoding="utf-8").read().splitlines()

# Raw RGB pixels 0-255 of any size: the model resizes to {size}x{size} itself, as in training.
image = np.asarray(Image.open("{PHOTO}").convert("RGB"), dtype="float32")
probabilities = np.asarray(model(image[None], training=False))[0]
best = int(np.argmax(probabilities))
print(labels[best], f"{{probabilities[best]:.0%}}")
''')


def _python_onnx(f: Callable[[str], str], size: int, labels: list[str]) -> str:
    return (f'''import numpy as np
import onnxruntime as ort   # pip install onnxruntime
from PIL import Image

session = ort.InferenceSession("{f("model.onnx")}", providers=["CPUExecutionProvider"])
labels = {json.dumps(labels, ensure_ascii=False)}

# Input "image": (batch, height, width, 3) float32 RGB 0-255; batch and size are free (resized to {size}x{size} inside).
image = np.asarray(Image.open("{PHOTO}").convert("RGB"), dtype="float32")
probabilities = session.run(None, {{"image": image[None]}})[0][0]   # output "probabilities"
best = int(np.argmax(probabilities))
print(labels[best], f"{{probabilities[best]:.0%}}")
''')


def _python_litert(f: Callable[[str], str], size: int, labels: list[str]) -> str:
    return (f'''import numpy as np
from ai_edge_litert.interpreter import Interpreter   # pip install ai-edge-litert
from PIL import Image

interpreter = Interpreter(model_path="{f("model.tflite")}")
interpreter.allocate_tensors()
labels = open("{f("labels.txt")}", encoding="utf-8").read().splitlines()

# Input: one image, (1, {size}, {size}, 3) float32 RGB 0-255.
image = Image.open("{PHOTO}").convert("RGB").resize(({size}, {size}), Image.BILINEAR)
x = np.asarray(image, dtype="float32")[None]
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
probabilities = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
best = int(np.argmax(probabilities))
print(labels[best], f"{{probabilities[best]:.0%}}")
''')


def _browser(f: Callable[[str], str], size: int, labels: list[str]) -> str:
    return (f'''<!-- The ready-made page is {f("web.zip")}: unzip it and serve the folder (python -m http.server). -->
<script src="https://cdn.jsdelivr.net/npm/onnxruntime-web@1.30.0/dist/ort.wasm.min.js"></script>
<script>
const labels = {json.dumps(labels, ensure_ascii=False)};
const session = ort.InferenceSession.create("model.onnx");   // from {f("web.zip")} or {f("model.onnx")}

async function classify(img) {{   // an <img> element, loaded
  const canvas = new OffscreenCanvas(img.naturalWidth, img.naturalHeight), ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const pixels = new Float32Array(canvas.width * canvas.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4) {{ pixels[j++] = rgba[i]; pixels[j++] = rgba[i + 1]; pixels[j++] = rgba[i + 2]; }}
  // any size: the model resizes to {size}x{size} itself
  const out = await (await session).run({{image: new ort.Tensor("float32", pixels, [1, canvas.height, canvas.width, 3])}});
  const probs = out.probabilities.data, best = probs.indexOf(Math.max(...probs));
  return [labels[best], probs[best]];
}}
</script>
''')


def _android(f: Callable[[str], str], size: int, labels: list[str]) -> str:
    return (f'''// build.gradle: implementation("com.google.ai.edge.litert:litert:1.4.0")
// Put {f("model.tflite")} and {f("labels.txt")} in app/src/main/assets/.
import android.content.Context
import android.graphics.Bitmap
import org.tensorflow.lite.Interpreter
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

class Classifier(context: Context) {{
    private val interpreter = context.assets.openFd("{f("model.tflite")}").use {{ fd ->
        FileInputStream(fd.fileDescriptor).channel.use {{
            Interpreter(it.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength))
        }}
    }}
    private val labels = context.assets.open("{f("labels.txt")}").bufferedReader().readLines()

    /** The best class and its probability. Input: {size}x{size} RGB, float32 pixels 0-255. */
    fun classify(photo: Bitmap): Pair<String, Float> {{
        val image = Bitmap.createScaledBitmap(photo, {size}, {size}, true)
        val input = ByteBuffer.allocateDirect(4 * {size} * {size} * 3).order(ByteOrder.nativeOrder())
        val pixels = IntArray({size} * {size})
        image.getPixels(pixels, 0, {size}, 0, 0, {size}, {size})
        for (p in pixels) {{
            input.putFloat(((p shr 16) and 0xFF).toFloat())
            input.putFloat(((p shr 8) and 0xFF).toFloat())
            input.putFloat((p and 0xFF).toFloat())
        }}
        val output = Array(1) {{ FloatArray({len(labels)}) }}
        interpreter.run(input, output)
        val best = output[0].indices.maxBy {{ output[0][it] }}
        return labels[best] to output[0][best]
    }}
}}
''')


def _curl(f: Callable[[str], str], size: int, labels: list[str], name: str) -> str:
    return (f'''# Start the endpoint (loopback only by default):
python -m tlcore serve RUN_FOLDER --port 8080

# Image files, answered as `python -m tlcore predict --json` does:
curl -F "image=@{PHOTO}" http://127.0.0.1:8080/predict

# TensorFlow Serving's REST format: pixel arrays (height x width x 3, 0-255; {size}x{size} is the model's size):
curl -X POST http://127.0.0.1:8080/v1/models/{name}:predict \\
     -H "Content-Type: application/json" -d '{{"instances": [[[[0, 0, 0]]]]}}'

curl http://127.0.0.1:8080/healthz
''')


def serve_name(run_dir: str | Path) -> str:
    """The model name ``serve`` answers to in ``/v1/models/<name>:predict``: the run folder's name."""
    return Path(run_dir).resolve().name


def snippets(run_dir: str | Path, size: int, labels: list[str] | None = None,
             name: Callable[[str], str] = lambda filename: filename) -> list[Snippet]:
    """Every snippet for the run, with ``name(artifact)`` as each file's name (the page's download names)."""
    labels = labels or load_labels(run_dir)
    load_run_config(run_dir)   # a run folder, or a RunError that says so
    f = name
    parts = [("python_keras", "Python with Keras", "python", _python_keras(f, size, labels), "predict_keras.py"),
             ("python_onnx", "Python with onnxruntime", "python", _python_onnx(f, size, labels), "predict_onnx.py"),
             ("python_litert", "Python with LiteRT", "python", _python_litert(f, size, labels),
              "predict_litert.py"),
             ("browser", "The browser (onnxruntime-web)", "html", _browser(f, size, labels), "browser.html"),
             ("android", "Android with LiteRT (Kotlin)", "kotlin", _android(f, size, labels), "Classifier.kt"),
             ("curl", "curl against `python -m tlcore serve`", "bash",
              _curl(f, size, labels, serve_name(run_dir)), "curl.sh")]
    return [Snippet(*part) for part in parts]
