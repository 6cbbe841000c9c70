"""FastAPI app: a page to draw a digit on, and a JSON API for predictions.

POST /api/predict takes an image (multipart field `file`, or the raw body with an image or
octet-stream content type) or JSON pixels ({"pixels": [784 floats in [0, 1]]}, or a list of
such lists). Bad input gets a 4xx JSON error and the server goes on serving.

The event loop only moves bytes: parsing, decoding, inference and the response's JSON run in
a bounded worker pool (503 past its queue), every request has a time limit (504), and the
body limit holds while the body arrives (413).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from mlplab.errors import MlplabError
from mlplab.serve.limits import BodyLimit, TimeLimit
from mlplab.serve.parsing import BadInput, parse_request
from mlplab.serve.pool import Overloaded, Ticket, WorkPool
from mlplab.serve.settings import ServeConfig
from mlplab.use.predict import Predictor, load_predictor

STATIC = Path(__file__).parent / "static"


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
        "process": _process_info(),
    }


def _process_info() -> dict:
    """Which server process answered, and its intra-op threads (of `--workers N`, each has 1)."""
    torch = sys.modules.get("torch")  # an .onnx model may be served without it
    return {"pid": os.getpid(), "intra_op_threads": torch.get_num_threads() if torch else None}


def answer(predictor: Predictor, content_type: str, body: bytes, start: float) -> bytes:
    """A predict request's body -> the response's JSON bytes (runs on a pool thread)."""
    images, batched = parse_request(content_type, body)
    probs = predictor.probabilities(images)
    results = [_prediction(predictor, p, x, start) for p, x in zip(probs, images, strict=True)]
    return json.dumps({"predictions": results} if batched else results[0]).encode()


def _lifespan(pool: WorkPool):
    """Shut the pool down with the app (after uvicorn has let requests in flight finish)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown()

    return lifespan


def create_app(model: str | Path | Predictor, config: ServeConfig | None = None):
    """The FastAPI app serving one model (a run directory, .safetensors, .onnx or .pt2)."""
    config = config or ServeConfig()
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    pool = WorkPool(config.threads, config.queue)
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="mlplab",
        version=str(predictor.info.get("versions", {}).get("mlplab") or "unknown"),
        description="Draw a digit, or post an image or pixels, and get class "
        "probabilities from an mlplab MLP.",
        lifespan=_lifespan(pool),
    )
    _mount_docs(app, predictor.info)
    _add_page_routes(app)
    _add_api_routes(app, predictor, pool, config)
    # Added last is outermost. The time limit covers the app reading the body; the body
    # limit is outside it, so that a refused body's bounded drain is not cut short by it.
    app.add_middleware(TimeLimit, seconds=config.timeout)
    app.add_middleware(BodyLimit, limit=config.max_body)
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


def _add_api_routes(app: FastAPI, predictor: Predictor, pool: WorkPool, config: ServeConfig):
    """The JSON API: health, model description, and predictions."""

    # No docstrings on these two: FastAPI would publish them in the OpenAPI document.
    # async, so that they answer on the event loop and never wait for a pool thread.
    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info() -> dict:
        return _model_summary(predictor)

    busy = {"Retry-After": str(config.retry_after)}

    @app.post("/api/predict", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict_endpoint(request: Request):
        """Class probabilities for an image or for 784 pixels in [0, 1]."""
        start = time.perf_counter()
        try:
            ticket = pool.admit()
        except Overloaded:
            await _discard_body(request)
            error = f"server busy: {config.queue} requests in progress; retry shortly"
            return JSONResponse({"error": error}, status_code=503, headers=busy)
        with ticket:
            return await _predict(request, ticket, predictor, start)


async def _discard_body(request: Request) -> None:
    """Read the body to its end without keeping it, so that the client reads the answer (one
    answered while it still sends sees a reset when it asked to close); the body limit
    bounds how much."""
    try:
        async for _ in request.stream():
            pass
    except ClientDisconnect:
        pass


async def _predict(request: Request, ticket: Ticket, predictor: Predictor, start: float):
    """Read the body here, answer it on the pool; a JSON error for bad input."""
    try:
        body = b"".join([chunk async for chunk in request.stream()])
    except ClientDisconnect:  # gone, or refused by the body limit, which answered already
        return Response(status_code=400)
    kind = request.headers.get("content-type", "")
    try:
        content = await ticket.run(answer, predictor, kind, body, start)
    except BadInput as e:
        return JSONResponse({"error": str(e)}, status_code=e.status)
    except MlplabError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return Response(content, media_type="application/json")


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
