"""The web export: a static folder whose ``index.html`` classifies a dropped image in the browser.

The TensorFlow.js converter (``tensorflowjs`` 4.22.0, the last release) cannot be installed beside TensorFlow 2.21:
it needs tensorflow-decision-forests, whose every release pins an older TensorFlow ("tensorflow-decision-forests
1.12.0 depends on tensorflow==2.19.0": pip's ResolutionImpossible). Installed without its dependencies it does
not import: ``No module named 'tf_keras'``; with tf-keras 2.21.0, ``No module named
'tensorflow_decision_forests'`` (imported unconditionally by tf_saved_model_conversion_v2.py); with that
stubbed, ``No module named 'jax'`` (jax_conversion.py imports jax.experimental.jax2tf). The page therefore runs the ONNX file with
onnxruntime-web (WebAssembly). The folder holds ``model.onnx`` (see :mod:`tlcore.onnx_export`),
``labels.json``, ``index.html`` and, when this machine has it, onnxruntime-web itself in ``ort/`` (found in
``$TLS_ORT_WEB_DIR`` or the repository's ``node_modules/onnxruntime-web/dist``), so it works offline; without it
the page loads onnxruntime-web 1.30.0 from the jsDelivr CDN. Browsers refuse to load a model from a
``file://`` page, so the folder is served: ``python -m http.server`` inside it, or any static web host.

The page draws the image at its own size (large photos scaled down to at most ``MAX_SIDE`` pixels) and feeds the
pixels, 0-255 RGB, to the model, which resizes them bilinearly as in training.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from .onnx_export import INPUT_NAME, OUTPUT_NAME, job_onnx

ORT_VERSION = "1.30.0"
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
MAX_SIDE = 1024
WEB_FILES = ("index.html", "model.onnx", "labels.json")


def ort_web_dir() -> Path | None:
    """Where onnxruntime-web's files are on this machine, or None."""
    here = Path(__file__).resolve().parent.parent / "node_modules" / "onnxruntime-web" / "dist"
    for folder in (os.environ.get("TLS_ORT_WEB_DIR"), here):
        if folder and all((Path(folder) / f).is_file() for f in ORT_FILES):
            return Path(folder)
    return None


def index_html(title: str, size: int, local_runtime: bool) -> str:
    """The page: drop or pick an image, see the top classes. Its result is also in ``#result``'s data-top."""
    base = "ort/" if local_runtime else CDN
    return _PAGE.replace("__TITLE__", _html(title)).replace("__SIZE__", str(int(size))).replace(
        "__BASE__", base).replace("__INPUT__", INPUT_NAME).replace("__OUTPUT__", OUTPUT_NAME).replace(
        "__MAX_SIDE__", str(MAX_SIDE))


def _html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def write_web(job: Any, entry: Any, target: Path) -> None:
    """The web writer of :mod:`tlcore.export_formats`: the folder ``target`` (index.html, model.onnx, …)."""
    from .artifacts import load_labels, load_run_config

    from .predict import main_task_model

    target.mkdir()
    model = main_task_model(job.model, job.run_dir)
    (target / "model.onnx").write_bytes(job_onnx(job, model if model is not job.model else None))   # labels' task
    labels = load_labels(job.run_dir)
    (target / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    runtime = ort_web_dir()
    if runtime is not None:
        (target / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(runtime / name, target / "ort" / name)
    name = load_run_config(job.run_dir).name or "Image classifier"
    (target / "index.html").write_text(index_html(name, job.size, runtime is not None), encoding="utf-8")


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #drop { display: block; border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center;
          cursor: pointer; margin: 1rem 0; }
  #drop.over { background: #eef; }
  #preview { width: min(100%, 16rem); height: auto; display: block; margin: 1rem auto; image-rendering: auto; }
  #preview:not([src]) { display: none; }
  #result li { margin: .25rem 0; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<p>Drop an image here, or click to choose one. It is classified in your browser; nothing is uploaded.</p>
<label id="drop">Drop an image here or click to choose
  <input id="file" type="file" accept="image/*" hidden>
</label>
<img id="preview" alt="">
<p id="status">Loading the model…</p>
<ol id="result"></ol>
<script src="__BASE__ort.wasm.min.js"></script>
<script>
const SIZE = __SIZE__, MAX_SIDE = __MAX_SIDE__;
ort.env.wasm.wasmPaths = new URL("__BASE__", location.href).href;
ort.env.wasm.numThreads = 1;
const status = document.getElementById("status"), result = document.getElementById("result");
const ready = Promise.all([
  ort.InferenceSession.create("model.onnx", {executionProviders: ["wasm"]}),
  fetch("labels.json").then(r => r.json()),
]).then(([session, labels]) => { status.textContent = "Ready: drop an image."; return {session, labels}; })
 .catch(e => { status.textContent = "The model could not be loaded (" + e + "): serve this folder over http, "
               + "for example with `python -m http.server` inside it."; status.className = "error"; throw e; });

async function classify(file) {
  const {session, labels} = await ready;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale)), h = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = new OffscreenCanvas(w, h), ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data, pixels = new Float32Array(w * h * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4) { pixels[j++] = rgba[i]; pixels[j++] = rgba[i + 1]; pixels[j++] = rgba[i + 2]; }
  const out = await session.run({"__INPUT__": new ort.Tensor("float32", pixels, [1, h, w, 3])});
  const probs = Array.from((out["__OUTPUT__"] || Object.values(out)[0]).data);
  const top = probs.map((p, i) => ({class: labels[i], probability: p}))
                   .sort((a, b) => b.probability - a.probability).slice(0, 3);
  result.innerHTML = "";
  for (const t of top) {
    const li = document.createElement("li");
    li.textContent = t.class + ": " + (100 * t.probability).toFixed(1) + "%";
    result.appendChild(li);
  }
  result.dataset.top = JSON.stringify(top);
  result.dataset.probabilities = JSON.stringify(probs);
  result.dataset.source = file.name;
  status.textContent = "Done (the model resizes to " + SIZE + "×" + SIZE + " itself).";
}

function take(file) {
  if (!file) return;
  document.getElementById("preview").src = URL.createObjectURL(file);
  status.textContent = "Classifying…"; status.className = "";
  classify(file).catch(e => { status.textContent = "This image could not be classified: " + e; status.className = "error"; });
}
const drop = document.getElementById("drop");
document.getElementById("file").addEventListener("change", e => take(e.target.files[0]));
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); take(e.dataTransfer.files[0]); });
</script>
</body>
</html>
"""
