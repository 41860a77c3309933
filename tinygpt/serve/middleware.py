"""ASGI middleware: the request-body size limit (413) and the request counter of /metrics."""

from __future__ import annotations

import json

from tinygpt.serve.errors import APIError, error_body
from tinygpt.serve.metrics import Metrics

ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/")


class BodyTooLarge(APIError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes",
                         code="request_too_large")


class BodyLimit:
    """Refuses a body over `limit` bytes: at once by its Content-Length, or as it streams in."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _send_error(send, BodyTooLarge(self.limit))
        seen, refused = 0, False

        async def limited():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    await _send_error(send, BodyTooLarge(self.limit))
                    return {"type": "http.disconnect"}  # the app stops reading; its answer is dropped
            return message

        async def unless_refused(message):
            if not refused:
                await send(message)

        await self.app(scope, limited, unless_refused)


async def _send_error(send, e: APIError) -> None:
    body = json.dumps(error_body(e.status, e.message, e.param, e.code)).encode()
    await send({"type": "http.response.start", "status": e.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class CountRequests:
    """Counts each HTTP response by endpoint and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else ("/v1/models" if path.startswith("/v1/models/") else "other")

        async def counted(message):
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counted)
