"""The web export: its model.onnx in Node (onnxruntime-node) and its index.html classifying an image in headless
Chromium (onnxruntime-web, WebAssembly), both answering as the studio's model does."""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_evaluate_predict import make_tiny_run  # noqa: E402

from _e2e import ROOT, new_page, shot  # noqa: E402

ORT_NODE = ROOT / "node_modules" / "onnxruntime-node"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """(run, the exported web folder, predictor, test image paths)."""
    from tlcore.data import Dataset
    from tlcore.export import export_run
    from tlcore.predict import Predictor
    from tlcore.web_export import ort_web_dir

    if ort_web_dir() is None:
        pytest.skip("needs onnxruntime-web in node_modules (npm ci at the repository root)")
    run = make_tiny_run(tmp_path_factory.mktemp("webrun"))
    folder = export_run(run, "web", run / "exports")
    paths = [s.path for s in Dataset.load(run / "data").split("test")]
    return run, folder, Predictor.from_run(run), paths


@pytest.fixture(scope="module")
def site(web):
    """The web folder served on a loopback port, as its users are told to (python -m http.server)."""
    _, folder, _, _ = web
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)   # bound and listening from here on
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    httpd.shutdown()
    httpd.server_close()


def test_the_web_model_answers_in_node_as_in_the_studio(web, tmp_path):
    if not (shutil.which("node") and ORT_NODE.is_dir()):
        pytest.skip("needs node and onnxruntime-node in node_modules (npm ci at the repository root)")
    _, folder, predictor, paths = web
    batch = predictor.prepare(paths)
    (tmp_path / "batch.json").write_text(json.dumps({"shape": list(batch.shape), "data": batch.ravel().tolist()}))
    script = tmp_path / "check.js"
    script.write_text(f"""
const ort = require({json.dumps(str(ORT_NODE))});
const fs = require("fs");
(async () => {{
  const batch = JSON.parse(fs.readFileSync({json.dumps(str(tmp_path / "batch.json"))}));
  const session = await ort.InferenceSession.create({json.dumps(str(folder / "model.onnx"))});
  const out = await session.run({{image: new ort.Tensor("float32", Float32Array.from(batch.data), batch.shape)}});
  console.log(JSON.stringify({{names: session.outputNames, dims: out.probabilities.dims,
                              data: Array.from(out.probabilities.data)}}));
}})();
""")
    done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["names"] == ["probabilities"] and answer["dims"] == [len(paths), 3]
    probs = np.array(answer["data"]).reshape(len(paths), 3)
    np.testing.assert_allclose(probs, predictor.model(batch).numpy(), atol=1e-5)


def test_the_page_classifies_a_dropped_image_in_chromium(web, site, browser):
    _, folder, predictor, paths = web
    assert (folder / "ort" / "ort.wasm.min.js").is_file()   # the runtime travels with the page: works offline
    page = new_page(browser)
    try:
        page.goto(site)
        page.locator("#status", has_text="Ready").wait_for()
        for how, path in zip(("picked", "dropped"), paths[:2]):
            page.evaluate("document.getElementById('result').removeAttribute('data-source')")
            if how == "picked":
                page.set_input_files("#file", path)
            else:   # a real drop event carrying the file, as a person's drag and drop does
                drop = page.evaluate_handle(
                    """([name, bytes]) => { const data = new DataTransfer();
                         data.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
                         return data; }""", [Path(path).name, list(Path(path).read_bytes())])
                page.dispatch_event("#drop", "drop", {"dataTransfer": drop})
            page.locator(f"#result[data-source='{Path(path).name}']").wait_for(state="attached")
            top = json.loads(page.locator("#result").get_attribute("data-top"))
            probs = json.loads(page.locator("#result").get_attribute("data-probabilities"))
            expected = predictor.probabilities([path])[0]
            assert top[0]["class"] == predictor.classes[int(np.argmax(expected))]
            np.testing.assert_allclose(probs, expected, atol=1e-4)
            assert page.locator("#result li").first.inner_text().startswith(top[0]["class"] + ": ")
        shot(page, "export_web_page")
        assert not page.page_errors, page.page_errors
    finally:
        page.context.close()


def test_the_page_says_what_to_do_when_opened_from_a_file(web, browser):
    _, folder, _, _ = web
    page = new_page(browser)
    try:
        page.goto((folder / "index.html").as_uri())
        page.locator("#status.error").wait_for()
        assert "serve this folder over http" in page.locator("#status").inner_text()
    finally:
        page.context.close()
