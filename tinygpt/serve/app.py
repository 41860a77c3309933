"""The FastAPI app: the OpenAI-compatible routes, `/health`, `/metrics` and the playground page.

The model loads after the server starts listening (`/health` answers 503 until it is ready).
Every route but `/health` and the page's files needs the API key when one is set (a Bearer
token, compared in constant time). Bodies over the size limit are refused with 413 before they
are read in full."""

from __future__ import annotations

import hmac
import os
from typing import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from tinygpt.serve import endpoints, errors
from tinygpt.serve.engine import Engine
from tinygpt.serve.errors import APIError
from tinygpt.serve.metrics import Metrics
from tinygpt.serve.middleware import BodyLimit, CountRequests
from tinygpt.serve.protocol import ChatRequest, CompletionRequest

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class State:
    """The engine once loaded, or why loading failed."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.engine: Engine | None = None
        self.load_error: str | None = None


def create_app(state: State, *, api_keys: list[str] = (), cors_origins: list[str] = (),
               max_body_bytes: int = 1 << 20) -> FastAPI:
    app = FastAPI(title="tinygpt", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.tinygpt = state
    errors.install(app)
    keys = [k.encode() for k in api_keys]
    auth = Depends(_authorizer(keys))
    engine = Depends(_engine_getter(state))
    _add_api_routes(app, auth, engine)
    _add_service_routes(app, state, auth)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(CountRequests, metrics=state.metrics)  # outside the limit: a 413 is counted
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


# The dependencies are coroutines: FastAPI runs a plain function in a worker thread, a hand-off
# per request that costs milliseconds of time to first token on a small CPU.

def _authorizer(keys: list[bytes]) -> Callable:
    async def check(request: Request) -> None:
        if not keys:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        token = given.strip().encode()
        ok = False
        for k in keys:  # every key compared, each in constant time
            ok |= hmac.compare_digest(token, k)
        if scheme.lower() != "bearer" or not ok:
            raise APIError(401, "a valid API key is needed: send 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    return check


def _engine_getter(state: State) -> Callable:
    async def get() -> Engine:
        if state.engine is None:
            raise APIError(503, state.load_error or "the model is still loading; retry shortly",
                           code="loading", headers={"Retry-After": "1"})
        return state.engine
    return get


def _add_api_routes(app: FastAPI, auth, engine) -> None:
    @app.get("/v1/models", dependencies=[auth])
    async def models(e: Engine = engine):
        return {"object": "list", "data": [_model_card(e)]}

    @app.get("/v1/models/{name}", dependencies=[auth])
    async def model(name: str, e: Engine = engine):
        if name != e.name:
            raise APIError(404, f"the model {name!r} does not exist", param="model", code="model_not_found")
        return _model_card(e)

    @app.post("/v1/completions", dependencies=[auth])
    async def completions(body: CompletionRequest, request: Request, e: Engine = engine):
        return await endpoints.completions(body, request, e)

    @app.post("/v1/chat/completions", dependencies=[auth])
    async def chat(body: ChatRequest, request: Request, e: Engine = engine):
        return await endpoints.chat(body, request, e)


def _model_card(e: Engine) -> dict:
    return {"id": e.name, "object": "model", "created": 0, "owned_by": "tinygpt", "max_model_len": e.context}


def _add_service_routes(app: FastAPI, state: State, auth) -> None:
    @app.get("/health")
    async def health():
        if state.engine is None:
            status = "error" if state.load_error else "loading"
            return JSONResponse({"status": status, "message": state.load_error}, status_code=503,
                                headers={"Retry-After": "1"})
        return {"status": "ok", "model": state.engine.name}

    @app.get("/metrics", dependencies=[auth])
    async def metrics():
        return Response(state.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(os.path.join(STATIC, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
