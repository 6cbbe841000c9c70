"""FastAPI app: a page to draw a digit on, and a JSON API for predictions.

POST /api/predict takes an image (multipart field `file`, or the raw body with an image or
octet-stream content type) or JSON pixels ({"pixels": [784 floats in [0, 1]]}, or a list of
such lists). Bad input gets a 4xx JSON error and the server goes on serving.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from mlplab.errors import MlplabError
from mlplab.use.predict import ImageError, Predictor, load_predictor, preprocess

MAX_BODY = 2 * 1024 * 1024
MAX_BATCH = 1024
DRAIN_LIMIT = 64 * 1024 * 1024  # past this, answer 413 without reading on
STATIC = Path(__file__).parent / "static"


class BadInput(Exception):
    """A request the API refuses, with its HTTP status."""

    def __init__(self, status: int, message: str):
        """`message` is what the client reads under "error"."""
        super().__init__(message)
        self.status = status


def parse_pixels(body: bytes) -> tuple[np.ndarray, bool]:
    """JSON {"pixels": [...784...]} or a list of them -> (N, 28, 28) floats, and whether batched."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(400, f"malformed JSON: {e}") from None
    if not isinstance(doc, dict) or "pixels" not in doc:
        raise BadInput(422, 'JSON body must be an object with "pixels"')
    pixels = doc["pixels"]
    batched = isinstance(pixels, list) and len(pixels) > 0 and isinstance(pixels[0], list)
    rows = pixels if batched else [pixels]
    if not isinstance(rows, list) or not rows or len(rows) > MAX_BATCH:
        raise BadInput(
            422, f"pixels: expected 784 numbers, or a list of 1 to {MAX_BATCH} such lists"
        )
    out = np.empty((len(rows), 784), dtype=np.float64)
    for i, row in enumerate(rows):
        where = f"pixels[{i}]" if batched else "pixels"
        if not isinstance(row, list) or len(row) != 784:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise BadInput(422, f"{where}: expected 784 values (28x28), got {got}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise BadInput(422, f"{where}: every value must be a number")
        out[i] = row
        if not np.isfinite(out[i]).all():
            raise BadInput(422, f"{where}: values must be finite (no NaN or infinity)")
        if out[i].min() < 0 or out[i].max() > 1:
            raise BadInput(422, f"{where}: values must be in [0, 1]")
    return out.reshape(-1, 28, 28), batched


_BINARY = {"type": "string", "format": "binary"}

# FastAPI cannot infer the body of /api/predict (the endpoint reads it raw), so describe it.
PREDICT_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "pixels": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 784,
                        "maxItems": 784,
                    }
                },
            }
        },
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": _BINARY}},
        },
        "image/png": {"schema": _BINARY},
        "application/octet-stream": {"schema": _BINARY},
    },
    "required": True,
}


async def _read_body(request: Request) -> bytes:
    """The request body, or BadInput 413 once it has been read to the end past MAX_BODY."""
    # Read (and past the limit, discard) the whole body before answering: a client
    # still sending when the server replies and closes would see a reset, not a 413.
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break
    if size > MAX_BODY:
        raise BadInput(413, f"body exceeds the limit of {MAX_BODY} bytes")
    return b"".join(chunks)


async def _form_file(request: Request, body: bytes) -> bytes:
    """The contents of the multipart field `file` in an already-read body."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def replay():
        """The body again, as the stream the parser expects."""
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as e:
        raise BadInput(400, f"malformed multipart body: {e.message}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadInput(422, "multipart body has no file field named 'file'")
    return await upload.read()


def _parse_body(kind: str, body: bytes) -> tuple[np.ndarray, bool]:
    """A body of media type `kind` -> (N, 28, 28) floats, and whether batched."""
    if not body:
        raise BadInput(400, "empty body: send an image or JSON pixels")
    if kind == "application/json":
        return parse_pixels(body)
    if kind in ("multipart/form-data", "application/octet-stream") or kind.startswith("image/"):
        try:
            return preprocess(body, "upload")[None], False
        except ImageError as e:
            status = 413 if "limit" in str(e) else 415
            raise BadInput(status, str(e).removeprefix("upload: ")) from None
    raise BadInput(
        415,
        f"unsupported content type {kind or 'none'!r}: send an "
        "image, multipart field 'file', or application/json pixels",
    )


async def _request_images(request: Request) -> tuple[np.ndarray, bool]:
    """The images a predict request carries, and whether it asked for a batch."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_body(request)
    if kind == "multipart/form-data":
        body = await _form_file(request, body)
    return _parse_body(kind, body)


def _prediction(predictor: Predictor, probs: np.ndarray, seen: np.ndarray, start: float) -> dict:
    """The JSON for one image's prediction."""
    best = int(probs.argmax())
    return {
        "probabilities": [float(p) for p in probs],
        "top": {
            "index": best,
            "class": predictor.classes[best],
            "probability": float(probs[best]),
        },
        "input": [round(float(v), 4) for v in seen.reshape(-1)],
        "latency_ms": (time.perf_counter() - start) * 1000,
    }


def _model_summary(predictor: Predictor) -> dict:
    """What /api/model says about the served model."""
    info = predictor.info
    return {
        "spec": info.get("spec"),
        "dataset": info.get("dataset"),
        "classes": predictor.classes,
        "test_accuracy": info.get("test_accuracy"),
        "normalization": {"mean": predictor.mean, "std": predictor.std},
        "source": predictor.path.name if predictor.path else None,
        "versions": info.get("versions"),
    }


def create_app(model: str | Path | Predictor):
    """The FastAPI app serving one model (a run directory, .safetensors or .onnx)."""
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="mlplab",
        version=str(predictor.info.get("versions", {}).get("mlplab", "")),
        description="Draw a digit, or post an image or pixels, and get class "
        "probabilities from an mlplab MLP.",
    )
    _mount_docs(app, predictor.info)
    _add_page_routes(app)
    _add_api_routes(app, predictor)
    return app


def _add_page_routes(app: FastAPI) -> None:
    """The drawing page and its static files."""

    @app.get("/", include_in_schema=False)
    def index():
        """The drawing page."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        """One file of the page, by name; nothing outside the static folder."""
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()}:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        media = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix)
        return FileResponse(path, media_type=media)


def _add_api_routes(app: FastAPI, predictor: Predictor) -> None:
    """The JSON API: health, model description, and predictions."""

    # No docstrings on these two: FastAPI would publish them in the OpenAPI document.
    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/model")
    def model_info() -> dict:
        return _model_summary(predictor)

    @app.post("/api/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict_endpoint(request: Request):
        """Class probabilities for an image or for 784 pixels in [0, 1]."""
        start = time.perf_counter()
        try:
            images, batched = await _request_images(request)
            probs = predictor.probabilities(images)
            results = [
                _prediction(predictor, p, x, start) for p, x in zip(probs, images, strict=True)
            ]
            return {"predictions": results} if batched else results[0]
        except BadInput as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except MlplabError as e:
            return JSONResponse({"error": str(e)}, status_code=400)


def _mount_docs(app: FastAPI, info: dict) -> None:
    """/docs served from the swagger-ui-bundle package when installed, so it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        from fastapi.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # FastAPI's default page, which loads Swagger UI from a CDN
        assets = {}
    else:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
        # This Swagger UI (4.x) reads OpenAPI 3.0; nothing in this API needs 3.1.
        app.openapi_version = "3.0.3"
        assets = {
            "swagger_js_url": "/docs-assets/swagger-ui-bundle.js",
            "swagger_css_url": "/docs-assets/swagger-ui.css",
            "swagger_favicon_url": "/docs-assets/favicon-32x32.png",
        }

    @app.get("/docs", include_in_schema=False)
    def docs():
        """The Swagger UI page."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mlplab API", **assets)


def serve(
    model: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning"
) -> None:
    """Run the app with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise MlplabError(
            "serving needs fastapi and uvicorn: pip install 'mlplab[serve]'"
        ) from None
    if not str(model).endswith(".onnx"):
        import torch

        # Each request is one small forward pass: more intra-op threads only contend with the
        # event loop and the clients (measured: 2.1x the requests/s with 1 thread than with 2).
        torch.set_num_threads(1)
    app = create_app(model)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
