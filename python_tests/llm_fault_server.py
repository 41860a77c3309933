"""An OpenAI-style story server for the tests of `tinygpt stories --llm`, and the benchmark's
zero-latency peer: it answers `/v1/chat/completions` and `/v1/completions` with a story that uses
the three words the request names, and misbehaves at set rates: 429 with Retry-After, 500, 503,
hanging past the client's timeout, malformed JSON, a body cut short, a slowly dribbled body,
and, among the answers, stories cut at max_tokens, refusals and duplicates.

    python python_tests/llm_fault_server.py --port 8123 [--faults 429=0.05,500=0.05,...] [--seed 0]

Which request misbehaves is drawn from --seed and a request counter. GET /stats gives the counts
of each behaviour served."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
import zlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FAULTS = ("429", "500", "503", "hang", "malformed", "truncated", "slow", "length", "refusal", "duplicate")
_WORDS = re.compile(r'the verb "([^"]+)", the noun "([^"]+)" and the adjective "([^"]+)"')
MODEL = "story-llm"


def story(prompt: str, seed: int) -> str:
    """A story with the prompt's three words, different for each prompt and seed."""
    from tinygpt.data.stories import generate_story

    m = _WORDS.search(prompt)
    verb, noun, adj = m.groups() if m else ("play", "ball", "happy")
    base = generate_story(seed=7, index=zlib.crc32(f"{prompt}|{seed}".encode()) % 10_000_000).text
    return f"The {adj} {noun} wanted to {verb} all day.\n{base}"


class Faults:
    def __init__(self, rates: dict[str, float], seed: int = 0, hang_s: float = 5.0, api_key: str | None = None):
        unknown = set(rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.rates, self.rng, self.hang_s, self.api_key = rates, random.Random(seed), hang_s, api_key
        self.stats = {k: 0 for k in (*FAULTS, "ok")}
        self.lock = threading.Lock()

    def draw(self) -> str:
        with self.lock:
            x, acc = self.rng.random(), 0.0
            for name in FAULTS:
                acc += self.rates.get(name, 0.0)
                if x < acc:
                    self.stats[name] += 1
                    return name
            self.stats["ok"] += 1
            return "ok"


def _error(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "server_error", "param": None, "code": None}},
                        status_code=status, headers=headers)


def _reply(chat: bool, text: str, finish: str, n_prompt: int) -> dict:
    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish} if chat
              else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None})
    usage = {"prompt_tokens": n_prompt, "completion_tokens": len(text.split()),
             "total_tokens": n_prompt + len(text.split())}
    return {"id": f"cmpl-{random.getrandbits(48):012x}", "object": "chat.completion" if chat else "text_completion",
            "created": 0, "model": MODEL, "choices": [choice], "usage": usage}


class _Truncated(Response):
    """Declares a longer body than it sends: the server then drops the connection."""

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")]})
        await send({"type": "http.response.body", "body": b'{"id": "cut', "more_body": False})


def create_app(faults: Faults) -> Starlette:
    async def models(request: Request):
        if faults.api_key and request.headers.get("authorization") != f"Bearer {faults.api_key}":
            return _error(401, "Incorrect API key provided.")
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def complete(request: Request, chat: bool):
        if faults.api_key and request.headers.get("authorization") != f"Bearer {faults.api_key}":
            return _error(401, "Incorrect API key provided.")
        body = await request.json()
        if body.get("model") != MODEL:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        return await _answer(faults, faults.draw(), chat, prompt, int(body.get("seed") or 0))

    async def chat(request: Request):
        return await complete(request, True)

    async def completions(request: Request):
        return await complete(request, False)

    async def stats(request: Request):
        return JSONResponse(faults.stats)

    routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]), Route("/stats", stats)]
    return Starlette(routes=routes)


async def _answer(faults: Faults, kind: str, chat: bool, prompt: str, seed: int):
    n_prompt = len(prompt.split())
    if kind == "429":
        return _error(429, "Rate limit reached, retry later.", {"Retry-After": "1"})
    if kind in ("500", "503"):
        return _error(int(kind), "The server had an error while processing your request.")
    if kind == "hang":
        await asyncio.sleep(faults.hang_s)
    if kind == "malformed":
        return Response('{"id": "x", "choices": [{"text": ', media_type="application/json")
    if kind == "truncated":
        return _Truncated()
    text, finish = story(prompt, seed), "stop"
    if kind == "length":
        text, finish = " ".join(text.split()[:30]), "length"
    elif kind == "refusal":
        text = "I'm sorry, but I can't help with writing that story."
    elif kind == "duplicate":  # the same story but its first line: a near duplicate
        text = text.split("\n", 1)[0] + "\n" + story("the same story every time", 0).split("\n", 1)[1]
    payload = json.dumps(_reply(chat, text, finish, n_prompt)).encode()
    if kind == "slow":
        return StreamingResponse(_dribble(payload), media_type="application/json")
    return Response(payload, media_type="application/json")


async def _dribble(payload: bytes):
    step = max(1, len(payload) // 8)
    for i in range(0, len(payload), step):
        await asyncio.sleep(0.05)
        yield payload[i:i + step]


def parse_rates(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, text.split(",")):
        name, _, rate = part.partition("=")
        out[name.strip()] = float(rate)
    return out


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--faults", default="", help="name=rate,... of: " + ", ".join(FAULTS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang", type=float, default=5.0, help="seconds a hanging request waits")
    p.add_argument("--api-key")
    a = p.parse_args()
    app = create_app(Faults(parse_rates(a.faults), a.seed, a.hang, a.api_key))
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
