"""An async client for OpenAI-compatible servers (OpenAI, vLLM, llama.cpp's server, Ollama,
`tinygpt serve`): one completion per call, retried with exponential backoff and jitter on 408,
409, 429, 5xx, connection errors, timeouts and malformed replies, honouring `Retry-After`. Other
errors (a bad request, a wrong key, an unknown model) are the caller's to fix: they raise
`FatalAPIError` with the server's own message at once. The API key goes only into the
Authorization header, never into a message."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class FatalAPIError(ValueError):
    """An error that retrying cannot mend: stop and tell the user the server's message."""


class RetryableError(RuntimeError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class GaveUp(RuntimeError):
    """Every attempt of one request failed (the last error is the message)."""


@dataclass
class Reply:
    text: str
    finish_reason: str | None
    usage: dict
    id: str | None
    model: str | None


@dataclass
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 1.0
    cap_s: float = 60.0
    max_retry_after_s: float = 600.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `attempt` (0-based): the server's Retry-After when
        it gives one, else exponential backoff with jitter (half fixed, half random)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        d = min(self.cap_s, self.base_s * 2 ** attempt)
        return d / 2 + random.uniform(0, d / 2)


def api_root(base_url: str) -> str:
    """The OpenAI-style root the endpoints hang under: BASE_URL as the openai client takes it
    (".../v1"); a bare host gets "/v1"."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FatalAPIError(f"--llm must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
    root = base_url.rstrip("/")
    return root if parts.path.strip("/") else root + "/v1"


@dataclass
class Answer:
    """What came back: the status, the headers and the whole body."""

    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def server_message(r: Answer) -> str:
    """The error message a server put in its reply (OpenAI's {"error": {"message"}} and the usual
    variants), else the start of the body."""
    try:
        body = r.json()
    except ValueError:
        return r.body[:500].decode("utf-8", "replace").strip() or f"HTTP {r.status}"
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or err.get("msg")
        if msg:
            return str(msg)
    if isinstance(err, str):
        return err
    return json.dumps(body)[:500]


def retry_after_s(r: Answer) -> float | None:
    value = r.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# aiohttp rather than httpx: at dozens of connections httpx's pool spends ~3 ms of CPU a request
# (it scans every connection for each one); aiohttp ~0.25 ms, so the client is never the bottleneck.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class Client:
    def __init__(self, base_url: str, model: str, *, api: str = "chat", api_key: str | None = None,
                 timeout_s: float = 120.0, concurrency: int = 16, policy: RetryPolicy | None = None):
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be chat or completions, got {api!r}")
        self.root, self.model, self.api = api_root(base_url), model, api
        self.policy = policy or RetryPolicy()
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout, self.connections = aiohttp.ClientTimeout(total=timeout_s), concurrency + 4
        self.session: aiohttp.ClientSession | None = None  # made on the loop that uses it
        self.retries = 0  # retries so far, all requests

    def _http(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(headers=self.headers, timeout=self.timeout,
                                                 connector=aiohttp.TCPConnector(limit=self.connections))
        return self.session

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _fetch(self, method: str, url: str, body: dict | None = None) -> Answer:
        async with self._http().request(method, url, json=body) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read())

    async def check_model(self) -> None:
        """Fails at once, with the server's message, when the server cannot be reached, refuses
        the key or does not list the model (a server without /models is let through)."""
        try:
            r = await self._fetch("GET", self.root + "/models")
        except TRANSPORT_ERRORS as e:
            raise FatalAPIError(f"cannot reach {self.root}: {type(e).__name__}: {e}") from None
        if r.status in (401, 403):
            raise FatalAPIError(f"{self.root} refused the API key (HTTP {r.status}): {server_message(r)}")
        if r.status != 200:
            return  # no model list here: the first request will tell
        try:
            ids = [m["id"] for m in r.json().get("data", [])]
        except (ValueError, AttributeError, KeyError, TypeError):
            return
        if ids and self.model not in ids:
            raise FatalAPIError(f"the server at {self.root} does not serve the model {self.model!r}; it serves: "
                                f"{', '.join(ids[:20])}")

    async def complete(self, prompt_part: dict, params: dict) -> Reply:
        """One completion, retried per the policy; GaveUp when every attempt failed."""
        body = {"model": self.model, **prompt_part, **params}
        url = f"{self.root}/{'chat/completions' if self.api == 'chat' else 'completions'}"
        for attempt in range(self.policy.max_retries + 1):
            try:
                return await self._once(url, body)
            except RetryableError as e:
                if attempt == self.policy.max_retries:
                    raise GaveUp(f"{attempt + 1} attempts failed; the last: {e}") from None
                self.retries += 1
                await asyncio.sleep(self.policy.delay(attempt, e.retry_after))
        raise AssertionError("unreachable")

    async def _once(self, url: str, body: dict) -> Reply:
        try:
            r = await self._fetch("POST", url, body)
        except TRANSPORT_ERRORS as e:  # refused, reset, timed out, a body cut short
            raise RetryableError(f"{type(e).__name__}: {e or 'timed out'}") from None
        if r.status in RETRY_STATUSES:
            raise RetryableError(f"HTTP {r.status}: {server_message(r)}", retry_after_s(r))
        if r.status != 200:
            raise FatalAPIError(f"the server answered HTTP {r.status}: {server_message(r)}")
        return self._parse(r)

    def _parse(self, r: Answer) -> Reply:
        try:
            data = r.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
            if not isinstance(text, str):
                raise TypeError("the text is not a string")
            return Reply(text, choice.get("finish_reason"), data.get("usage") or {}, data.get("id"),
                         data.get("model"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise RetryableError(f"a malformed reply ({type(e).__name__}: {e}): {r.body[:200]!r}") from None
