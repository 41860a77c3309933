"""An OpenAI-style judge for the tests of `tinygpt.grade.judge`: POST /v1/chat/completions
answers the first turn (one user message) with an assessment and the second turn (the first
turn, the assessment it gave, a new user message) with scores, and GET /v1/models lists its one
model. GET /stats gives the counts of requests and of each answer format served.

The scores of a story are derived from a hash of the first turn's user message (which holds the
story), so a test can recompute them with `scores_for`. The format of a scoring answer is drawn
from a hash of that message and the attempt (the how-many-th scoring request for it this server
has seen), see `format_for`: plain JSON, JSON in a ```json fence among prose, "Grammar: 7/10"
lines, or malformed (a field missing, a score out of range, no scores at all). A story that
contains ALWAYS_MALFORMED is always answered malformed. With `reject_schema`, a request with a
response_format of type json_schema is refused with 400, as many servers do.

    python python_tests/judge_stub_server.py --port 8124 [--reject-schema]"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import socket
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL = "judge-llm"
GOOD = ("json", "fence", "lines")
BAD = ("missing", "range", "garbage")
ALWAYS_MALFORMED = "[always malformed]"


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def scores_for(story: str) -> dict:
    """The scores this judge gives the story in the first turn's user message `story`."""
    h = _digest(story)
    return {"grammar": 1 + h[0] % 10, "creativity": 1 + h[1] % 10, "consistency": 1 + h[2] % 10,
            "plot": 1 + h[3] % 10, "age_group": "ABCDEF"[h[4] % 6]}


def format_for(story: str, attempt: int) -> str:
    """The format of the answer to scoring request `attempt` (1-based) of the story: good two
    times in three."""
    if ALWAYS_MALFORMED in story:
        return BAD[(attempt - 1) % len(BAD)]
    h = _digest(f"{story}|{attempt}")
    return GOOD[h[0] % 3] if h[1] % 3 else BAD[h[0] % 3]


def assessment_for(story: str) -> str:
    return f"The continuation is mostly clear and follows the beginning (note {_digest(story).hex()[:8]})."


def render(fmt: str, s: dict) -> str:
    if fmt == "json":
        return json.dumps(s)
    if fmt == "fence":
        return f"Here are my grades for the student.\n```json\n{json.dumps(s, indent=2)}\n```\nI hope this helps."
    if fmt == "lines":
        return (f"Grammar: {s['grammar']}/10\nCreativity: {s['creativity']}/10\nConsistency: {s['consistency']}/10\n"
                f"Plot: {s['plot']}/10\nAge group: {s['age_group']} ({'ABCDEF'.index(s['age_group']) * 2 + 3} years)")
    if fmt == "missing":
        return json.dumps({k: v for k, v in s.items() if k != "plot"})
    if fmt == "range":
        return json.dumps({**s, "grammar": 11})
    return "What a lovely story! I would not want to put numbers on it."


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": None}}, status_code=status)


def _reply(text: str) -> dict:
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 1}}


class Stub:
    def __init__(self, reject_schema: bool = False):
        self.reject_schema = reject_schema
        self.stats = collections.Counter()
        self.attempts = collections.Counter()  # scoring requests seen per story
        self.lock = threading.Lock()

    def answer(self, body: dict) -> JSONResponse:
        msgs = body.get("messages") or []
        if body.get("model") != MODEL:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        schema = (body.get("response_format") or {}).get("type") == "json_schema"
        with self.lock:
            self.stats["requests"] += 1
            self.stats["with_schema"] += schema
            if schema and self.reject_schema:
                self.stats["rejected_schema"] += 1
                return _error(400, "response_format json_schema is not supported")
            if len(msgs) == 1 and msgs[0].get("role") == "user":
                self.stats["assessments"] += 1
                return JSONResponse(_reply(assessment_for(msgs[0]["content"])))
            story = msgs[0].get("content", "") if msgs else ""
            if [m.get("role") for m in msgs] != ["user", "assistant", "user"] or \
                    msgs[1].get("content") != assessment_for(story):
                self.stats["bad_conversation"] += 1
                return _error(400, "the second turn must be: the first message, my assessment, a new message")
            self.attempts[story] += 1
            fmt = format_for(story, self.attempts[story])
            self.stats["scores"] += 1
            self.stats[fmt] += 1
        return JSONResponse(_reply(render(fmt, scores_for(story))))


def create_app(stub: Stub) -> Starlette:
    async def chat(request: Request):
        return stub.answer(await request.json())

    async def models(request: Request):
        with stub.lock:
            stub.stats["models"] += 1
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def stats(request: Request):
        with stub.lock:
            return JSONResponse(dict(stub.stats))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models),
                             Route("/stats", stats)])


@contextlib.contextmanager
def running(stub: Stub):
    """The stub served by uvicorn on 127.0.0.1 at a free port, in a thread; yields the root URL
    (without /v1)."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(stub), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the judge stub did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reject-schema", action="store_true", help="answer 400 to a json_schema response_format")
    a = p.parse_args()
    uvicorn.run(create_app(Stub(a.reject_schema)), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
