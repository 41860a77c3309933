"""Running the server: uvicorn listens at once, the model loads beside it (`/health` says 503
until it is ready), and a model that fails to load stops the server with the reason."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from tinygpt.serve.app import State, create_app
from tinygpt.serve.engine import Engine
from tinygpt.serve.metrics import Metrics

log = logging.getLogger("tinygpt.serve")


@dataclass
class ServeOptions:
    run: str
    which: str = "best"
    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str | None = None
    api_keys: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    max_batch: int = 32
    max_queue: int = 256
    max_body_bytes: int = 1 << 20
    device: str = "auto"
    dtype: str = "auto"
    reference: bool = False
    log_level: str = "info"


def load_engine(o: ServeOptions, name: str, metrics: Metrics) -> Engine:
    from tinygpt.devices import resolve_device
    from tinygpt.training.checkpoint import load_run

    device = resolve_device(o.device)
    model, tokenizer = load_run(o.run, o.which, fused=not o.reference, map_location=device)
    return Engine(model.to(device), tokenizer, name, max_batch=o.max_batch, max_queue=o.max_queue, dtype=o.dtype,
                  metrics=metrics)


def serve(o: ServeOptions, name: str, on_ready=None) -> int:
    """Serves until interrupted; 1 if the model could not be loaded."""
    import uvicorn

    state = State(Metrics(o.max_batch))
    app = create_app(state, api_keys=o.api_keys, cors_origins=o.cors_origins, max_body_bytes=o.max_body_bytes)
    server = uvicorn.Server(uvicorn.Config(app, host=o.host, port=o.port, log_level=o.log_level,
                                           timeout_graceful_shutdown=5))

    failure: list[BaseException] = []

    def load():
        try:
            state.engine = load_engine(o, name, state.metrics)
        except Exception as e:  # noqa: BLE001 - re-raised once the server has stopped
            state.load_error = f"the model could not be loaded: {type(e).__name__}: {e}"
            log.error(state.load_error)
            failure.append(e)
            server.should_exit = True
            return
        if on_ready is not None:
            on_ready(state.engine)

    threading.Thread(target=load, name="tinygpt-load", daemon=True).start()
    try:
        server.run()
    finally:
        if state.engine is not None:
            state.engine.close()
    if failure:
        raise failure[0]
    return 0
