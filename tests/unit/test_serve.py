"""``python -m tlcore serve``: the REST endpoint end to end on loopback (uvicorn on a real socket), good requests
equal to ``predict --json`` and to the studio's probabilities, bad ones a 4xx with one sentence."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_evaluate_predict import make_tiny_run  # noqa: E402

from tlcore.predict import Predictor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MAX_MB, MAX_IMAGES, MAX_PIXELS = 0.5, 4, 100 * 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(run folder, base URL, predictor): the app served by uvicorn on a loopback socket bound before it starts,
    so requests queue in the socket until the server accepts them (no waiting loop)."""
    import uvicorn

    from tlcore.serve import make_app

    run = make_tiny_run(tmp_path_factory.mktemp("serverun"))
    app = make_app(run, max_mb=MAX_MB, max_images=MAX_IMAGES, max_pixels=MAX_PIXELS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield run, f"http://127.0.0.1:{sock.getsockname()[1]}", Predictor.from_run(run)
    uv.should_exit = True
    thread.join(timeout=30)
    sock.close()


def call(url: str, body: bytes | None = None, content_type: str | None = None, method: str | None = None,
         headers: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text.startswith(b"{") else text.decode()


def multipart(files: list[tuple[str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_healthz_names_the_model_and_its_classes(server):
    run, url, _ = server
    status, body = call(f"{url}/healthz")
    assert status == 200 and body == {"status": "ok", "model": run.name, "classes": ["blue", "green", "red"],
                                      "image_size": 32}


def test_tf_serving_format_answers_the_studios_probabilities(server):
    run, url, predictor = server
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3)).astype("float32"), rng.integers(0, 256, (20, 24, 3)).astype("float32")]
    status, body = call(f"{url}/v1/models/{run.name}:predict", json.dumps(
        {"instances": [im.tolist() for im in images]}).encode(), "application/json")
    assert status == 200 and set(body) == {"predictions"}
    np.testing.assert_allclose(np.array(body["predictions"]), predictor.probabilities(images), atol=1e-5)
    status, columnar = call(f"{url}/v1/models/{run.name}:predict", json.dumps(
        {"inputs": [images[0].tolist()]}).encode(), "application/json")
    np.testing.assert_allclose(columnar["predictions"][0], body["predictions"][0], atol=1e-6)


def test_image_files_answer_as_predict_json_does(server):
    run, url, _ = server
    from tlcore.data import Dataset

    paths = [s.path for s in Dataset.load(run / "data").split("test")][:3]
    body, kind = multipart([(Path(p).name, Path(p).read_bytes()) for p in paths], {"note": "ignored"})
    status, answers = call(f"{url}/predict?top_k=2", body, kind)
    cli = subprocess.run([sys.executable, "-m", "tlcore", "predict", str(run), *paths, "--json", "--top-k", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert status == 200 and cli.returncode == 0, cli.stderr[-2000:]
    expected = json.loads(cli.stdout)
    for record, path in zip(expected, paths):
        record["image"] = Path(path).name
    assert [a["image"] for a in answers] == [Path(p).name for p in paths]
    assert [[t["class"] for t in a["top"]] for a in answers] == [[t["class"] for t in e["top"]] for e in expected]
    got = [[t["probability"] for t in a["top"]] for a in answers]
    np.testing.assert_allclose(got, [[t["probability"] for t in e["top"]] for e in expected], atol=1e-6)


def _pixels(h: int, w: int, value: float = 10) -> list:
    return np.full((h, w, 3), value).tolist()


BAD = [
    # (what, path, body, content type, status, words in the sentence)
    ("not JSON", "tf", b"{nope", "application/json", 400, "not JSON"),
    ("no instances", "tf", b'{"rows": []}', "application/json", 400, '"instances"'),
    ("flat array", "tf", b'{"instances": [[1, 2, 3]]}', "application/json", 400, "shape [3]"),
    ("text pixels", "tf", b'{"instances": [[["a", "b", "c"]]]}', "application/json", 400, "not an array of numbers"),
    ("pixels over 255", "tf", json.dumps({"instances": [_pixels(4, 4, 300)]}).encode(), "application/json", 400,
     "outside 0-255"),
    ("too many images", "tf", json.dumps({"instances": [_pixels(2, 2)] * 5}).encode(), "application/json", 413,
     "at most 4 images"),
    ("too many pixels", "tf", json.dumps({"instances": [_pixels(101, 100)]}).encode(), "application/json", 413,
     "more than 10,000"),
    ("unknown model", "/v1/models/other:predict", b'{"instances": []}', "application/json", 404,
     "no model called 'other'"),
    ("not multipart", "/predict", b"hello", "text/plain", 415, "multipart/form-data"),
    ("no file", "/predict", *multipart([], {"a": "b"}), 400, "no image file"),
    ("not an image", "/predict", *multipart([("x.png", b"not a png at all")]), 422, "x.png"),
    ("too many files", "/predict", *multipart([("x.png", b"x")] * 5), 413, "at most 4 images"),
    ("bad top_k", "/predict?top_k=many", *multipart([("x.png", b"x")]), 400, "top_k must be a whole number"),
]


@pytest.mark.parametrize("what, path, body, kind, status, words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_with_one_sentence(server, what, path, body, kind, status, words):
    run, url, _ = server
    path = f"/v1/models/{run.name}:predict" if path == "tf" else path
    got, answer = call(url + path, body, kind)
    assert got == status and set(answer) == {"error"}, answer
    assert words in answer["error"] and answer["error"].endswith(".") and "Traceback" not in answer["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_request_over_the_size_limit_is_refused(server, chunked):
    run, url, _ = server
    # Just over the limit (about 1.1×): the whole body fits in loopback's socket buffers, so the client has sent it
    # all before the server answers 413 and closes (a far larger body can meet a closed socket: a broken pipe).
    body = b'{"instances": [' + b"0," * int(MAX_MB * 1024 * 1024 * 0.55) + b"0]}"
    data = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    status, answer = call(f"{url}/v1/models/{run.name}:predict", data, "application/json")  # type: ignore[arg-type]
    assert status == 413 and "larger than 0.5 MB" in answer["error"]
    assert call(f"{url}/healthz")[0] == 200   # the server is still there


def test_serve_binds_to_loopback_by_default():
    from tlcore.cli import build_parser

    args = build_parser().parse_args(["serve", "somerun"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)


def test_wrong_method_is_refused(server):
    _, url, _ = server
    assert call(f"{url}/predict", method="GET")[0] == 405
