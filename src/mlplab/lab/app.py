"""The lab's web app: the page, its controls (POSTs), a look inside (JSON) and the live stream.

The event loop only moves bytes. Training and every look at the model happen on the lab
session's thread, between steps (LabSession.ask); decoding a drawing runs in a worker thread.
The limits are the serve app's: a body limit while the body arrives (413), a time limit per
request (504), and a bounded queue for the lab's thread (503). Requests from other origins are
refused (403, mlplab.lab.guard). An mlplab error anywhere is a one-line JSON answer naming the
field it is about (one handler, for every route).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.requests import ClientDisconnect

from mlplab.errors import MlplabError
from mlplab.lab import views
from mlplab.lab.guard import SameOrigin
from mlplab.lab.session import Busy, LabSession
from mlplab.serve.limits import BodyLimit, TimeLimit
from mlplab.serve.parsing import BadInput
from mlplab.serve.settings import ServeConfig

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MEDIA = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it (the `lab` extra), served offline."""
    from importlib import resources

    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


class TimeLimitButStream(TimeLimit):
    """The serve app's time limit for every request but the event stream, which is open as
    long as the page is."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path") == "/api/events":
            return await self.app(scope, receive, send)
        return await super().__call__(scope, receive, send)


class EventStream(EventSourceResponse):
    """The live stream; a page that stops reading (a sleeping laptop, a frozen tab) for
    SEND_TIMEOUT seconds is dropped without a traceback in the log: it reloads from
    /api/state and its last event id when it wakes."""

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.info("dropped an event stream that stopped reading")


SEND_TIMEOUT = 30


def error_response(e: Exception) -> JSONResponse:
    """A one-line error, with the setting it is about (ConfigError.field) for the page to mark."""
    if isinstance(e, Busy):
        return JSONResponse({"error": str(e)}, status_code=503, headers={"Retry-After": "1"})
    status = e.status if isinstance(e, BadInput) else 400
    return JSONResponse({"error": str(e), "field": views.field_of(e)}, status_code=status)


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, or BadInput."""
    try:
        body = b"".join([chunk async for chunk in request.stream()])
    except ClientDisconnect:
        raise BadInput(400, "the body did not arrive whole") from None
    try:
        doc = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BadInput(400, f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadInput(422, "the body must be a JSON object")
    return doc


def create_app(session: LabSession, port: int, loopback: bool = True, limits=None) -> FastAPI:
    """The lab's app around a started LabSession; `port` and `loopback` for the Host check."""
    limits = limits or ServeConfig()
    app = FastAPI(docs_url=None, redoc_url=None, title="mlplab lab")

    @app.exception_handler(MlplabError)
    async def mlplab_error(request: Request, e: MlplabError) -> JSONResponse:
        return error_response(e)

    _add_page_routes(app)
    _add_run_routes(app, session)
    _add_experiment_routes(app, session)
    _add_inside_routes(app, session)
    app.add_middleware(BodyLimit, limit=limits.max_body)
    app.add_middleware(TimeLimitButStream, seconds=limits.timeout)
    app.add_middleware(SameOrigin, port=port, loopback=loopback)
    return app


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "lab.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name == "plotly.min.js":
            return FileResponse(plotly_js(), media_type="text/javascript")
        if name not in {p.name for p in STATIC.iterdir()}:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return FileResponse(STATIC / name, media_type=MEDIA.get(Path(name).suffix))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/choices")
    async def choices() -> dict:
        return views.choices()

    @app.get("/api/spec")
    async def spec(text: str = ""):
        return views.spec_of(text)


def _add_run_routes(app: FastAPI, session: LabSession) -> None:
    @app.get("/api/state")
    async def state() -> dict:
        return session.live.history()

    @app.get("/api/events")
    async def events(request: Request, after: int | None = None):
        last = request.headers.get("last-event-id")
        start = int(last) if last and last.isdigit() else (after or 0)
        return EventStream(session.live.stream(start), send_timeout=SEND_TIMEOUT)

    @app.post("/api/control")
    async def control(request: Request):
        doc = await read_json(request)
        action = doc.get("action")
        if action not in ("play", "pause", "step", "reset"):
            raise BadInput(
                422, f"action: must be play, pause, step or reset, got {action!r}", field="action"
            )
        session.send(action)
        return {"ok": True, "action": action}

    @app.post("/api/lr")
    async def lr(request: Request):
        doc = await read_json(request)
        future = views.set_lr(session, doc.get("lr"))
        return {"lr": await asyncio.wrap_future(future)}

    @app.post("/api/build")
    async def build(request: Request):
        config = views.config_of(session, await read_json(request))
        session.send("build", config)
        return JSONResponse({"config": config.to_dict()}, status_code=202)

    @app.post("/api/extend")
    async def extend(request: Request):
        epochs = views.positive_int(await read_json(request), "epochs")
        session.send("extend", epochs)
        return JSONResponse({"epochs": epochs}, status_code=202)


def _add_experiment_routes(app: FastAPI, session: LabSession) -> None:
    @app.get("/api/experiments")
    async def experiments() -> dict:
        return {"experiments": views.catalog()}

    @app.post("/api/experiment")
    async def experiment(request: Request):
        chosen = views.experiment_of(await read_json(request))
        session.send("experiment", chosen)
        return JSONResponse({"link": chosen.link(), "runs": len(chosen.runs)}, status_code=202)

    @app.post("/api/vary")
    async def vary(request: Request):
        setting, value = views.varied(session, await read_json(request))
        session.send("vary", setting, value)
        return JSONResponse({"setting": setting, "value": value}, status_code=202)

    @app.post("/api/remove")
    async def remove(request: Request):
        run = views.run_id(session, await read_json(request))
        session.send("remove", run)
        return JSONResponse({"run": run}, status_code=202)

    @app.post("/api/focus")
    async def focus(request: Request):
        run = views.run_id(session, await read_json(request))
        session.send("focus", run)
        return JSONResponse({"run": run}, status_code=202)

    @app.post("/api/watch")
    async def watch(request: Request):
        doc = await read_json(request)
        if doc.get("snapshot") is not True:
            raise BadInput(
                422, "snapshot: must be true (a page that shows the weights asks)", field="snapshot"
            )
        session.watch_snapshots()
        return {"ok": True}

    @app.post("/api/input")
    async def input_(request: Request):
        doc = await read_json(request)
        given = await asyncio.to_thread(views.input_of, doc)
        session.send("input", given)
        return JSONResponse({"ok": True}, status_code=202)


def _add_inside_routes(app: FastAPI, session: LabSession) -> None:
    async def on_lab_thread(fn):
        return await asyncio.wrap_future(session.ask(fn))

    async def input_of(request: Request):
        doc = await read_json(request)
        return doc, await asyncio.to_thread(views.input_of, doc)

    @app.post("/api/inspect")
    async def inspect(request: Request):
        doc, given = await input_of(request)
        return await on_lab_thread(lambda trainer: views.inspect(trainer, given))

    @app.post("/api/gradcheck")
    async def gradcheck(request: Request):
        doc, given = await input_of(request)
        return await on_lab_thread(lambda t: views.gradcheck(t, given, doc.get("label")))

    @app.get("/api/unit")
    async def unit(layer: int = 1, unit: int = 0):
        return await on_lab_thread(lambda trainer: views.unit(trainer, layer, unit))

    @app.get("/api/confusion")
    async def confusion(true: int = 0, pred: int = 0, limit: int = 60):
        return await on_lab_thread(lambda t: views.confusion_cell(t, true, pred, limit))

    @app.get("/api/test-image")
    async def test_image(index: int = 0):
        return await on_lab_thread(lambda trainer: views.test_image(trainer, index))
