"""``python -m tlcore serve RUN``: a small REST endpoint for a classroom (starlette on uvicorn).

- ``POST /v1/models/<name>:predict``: TensorFlow Serving's REST format, ``{"instances": [...]}`` (or
  ``{"inputs": [...]}``) of pixel arrays (height × width × 3, RGB 0-255, any size) → ``{"predictions": [[p, …]]}``,
  so TF Serving clients work unchanged. ``<name>`` is the run folder's name.
- ``POST /predict``: image files (multipart/form-data, any field names; ``?top_k=3``) → the same JSON as
  ``python -m tlcore predict --json`` (``image`` is the uploaded file's name).
- ``GET /healthz``: ``{"status": "ok", "model", "classes", "image_size"}``.

Limits: a request body of at most ``max_mb`` megabytes (413), ``max_images`` images a request and
``settings.MAX_IMAGE_PIXELS`` pixels an image (413); bad input gets a 4xx whose ``error`` is one sentence. It
binds to 127.0.0.1 unless told otherwise. For production, run the SavedModel under TensorFlow Serving
(docs/deploy.md).
"""
from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import numpy as np

from .errors import ImageError, TLError
from .predict import Predictor, prediction_records
from .settings import MAX_IMAGE_PIXELS
from .snippets import serve_name

MAX_MB = 20
MAX_IMAGES = 64


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _instances(body: bytes, max_images: int, max_pixels: int) -> list[np.ndarray]:
    """The pixel arrays of a TF Serving request body, checked."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _Refused(400, "The request body is not JSON: send {\"instances\": [pixel arrays]}.") from None
    rows = payload.get("instances", payload.get("inputs")) if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise _Refused(400, "The JSON has no \"instances\" list: send {\"instances\": [pixel arrays]}.")
    if len(rows) > max_images:
        raise _Refused(413, f"A request may hold at most {max_images} images: split it into several requests.")
    images = []
    for i, row in enumerate(rows):
        row = row.get("image", row.get("inputs")) if isinstance(row, dict) else row
        try:
            array = np.asarray(row, dtype="float32")
        except (ValueError, TypeError):
            raise _Refused(400, f"Instance {i} is not an array of numbers: send height × width × 3 RGB "
                                "pixels 0-255.") from None
        if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
            raise _Refused(400, f"Instance {i} has shape {list(array.shape)}: send height × width × 3 RGB "
                                "pixels 0-255.")
        if array.shape[0] * array.shape[1] > max_pixels:
            raise _Refused(413, f"Instance {i} has {array.shape[0] * array.shape[1]:,} pixels, more than "
                                f"{max_pixels:,}: send a smaller image.")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise _Refused(400, f"Instance {i} has pixel values outside 0-255: send RGB pixels 0-255.")
        images.append(array)
    return images


def make_app(run_dir: str | Path, *, max_mb: float = MAX_MB, max_images: int = MAX_IMAGES,
             max_pixels: int = MAX_IMAGE_PIXELS):
    """The ASGI app serving the run's model (loaded now)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    predictor = Predictor.from_run(run_dir).warm_up()
    name, limit = serve_name(run_dir), int(max_mb * 1024 * 1024)
    lock = threading.Lock()   # one model call at a time: the CPU is shared anyway

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > 2 * limit:   # refused unread
            raise _Refused(413, f"The request is larger than {max_mb:g} MB: send fewer or smaller images.")
        chunks, size = [], 0   # a little over the limit: read up to it, so that the client hears the answer
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refused(413, f"The request is larger than {max_mb:g} MB: send fewer or smaller images.")
            chunks.append(chunk)
        return b"".join(chunks)

    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except _Refused as exc:
                return refuse(exc.status, exc.message)
            except ImageError as exc:
                return refuse(413 if exc.reason.startswith("too large") else 422, str(exc))
            except TLError as exc:
                return refuse(400, str(exc))
        return endpoint

    async def healthz(request: Request):
        return JSONResponse({"status": "ok", "model": name, "classes": predictor.classes,
                             "image_size": predictor.image_size})

    async def tf_serving(request: Request):
        if request.path_params["name"] != name:
            raise _Refused(404, f"There is no model called {request.path_params['name']!r} here: "
                                f"use /v1/models/{name}:predict.")
        images = _instances(await body_of(request), max_images, max_pixels)
        with lock:
            probs = await run_in_threadpool(predictor.probabilities, images)
        return JSONResponse({"predictions": np.asarray(probs).tolist()})

    async def predict(request: Request):
        try:
            top_k = int(request.query_params.get("top_k", 3))
        except ValueError:
            raise _Refused(400, "top_k must be a whole number, such as 3.") from None
        if top_k < 1:
            raise _Refused(400, "top_k must be 1 or more.")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise _Refused(415, "Send the images as multipart/form-data files, for example "
                                "curl -F \"image=@photo.jpg\" …/predict.")
        body = await body_of(request)
        return await run_in_threadpool(_predict_files, body, dict(request.headers), top_k)

    def _predict_files(body: bytes, headers: dict, top_k: int):
        files = _multipart(body, headers)
        if not files:
            raise _Refused(400, "The request holds no image file: send one or more files, for example "
                                "curl -F \"image=@photo.jpg\" …/predict.")
        if len(files) > max_images:
            raise _Refused(413, f"A request may hold at most {max_images} images: split it into several requests.")
        with tempfile.TemporaryDirectory(prefix="tls-serve-") as tmp:
            paths = []
            for i, (filename, data) in enumerate(files):   # through files, as `predict` reads them
                path = Path(tmp) / f"{i}{Path(filename).suffix.lower()[:8]}"
                path.write_bytes(data)
                paths.append(str(path))
            try:
                with lock:
                    records = prediction_records(predictor, paths, top_k=top_k)
            except ImageError as exc:   # name the uploaded file, not its temporary copy
                names = {Path(p).name: filename for p, (filename, _) in zip(paths, files)}
                text = str(exc)
                for temp, filename in names.items():
                    if text.startswith(temp + ":") or exc.name in (temp, str(Path(tmp) / temp)):
                        text = filename + text[text.index(":"):] if ":" in text else text
                        break
                raise _Refused(413 if exc.reason.startswith("too large") else 422, text) from None
        for record, (filename, _) in zip(records, files):
            record["image"] = filename
        return JSONResponse(records)

    routes = [Route("/healthz", healthz, methods=["GET"]),
              Route("/v1/models/{name}:predict", guarded(tf_serving), methods=["POST"]),
              Route("/predict", guarded(predict), methods=["POST"])]
    return Starlette(routes=routes)


def _multipart(body: bytes, headers: dict) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every file in a multipart/form-data body (python-multipart's parser)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise _Refused(400, "The multipart request has no boundary: let your HTTP client build the form.")
    files: list[tuple[str, bytes]] = []
    state: dict = {}

    def on_part_begin():
        state.update(headers={}, data=[], field=b"", value=b"")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"].append(data[start:end])

    def on_part_end():
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if b"filename" in disposition:
            files.append((disposition[b"filename"].decode("utf-8", "replace") or "image",
                          b"".join(state["data"])))

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001 - python-multipart raises several kinds for a broken body
        raise _Refused(400, "The multipart body is malformed: let your HTTP client build the form.") from None
    return files


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, **limits) -> None:
    """Serve the run until Ctrl+C (uvicorn)."""
    import uvicorn

    app = make_app(run_dir, **limits)
    uvicorn.run(app, host=host, port=port, log_level="info")
