"""The JSON the API answers, in OpenAI's shapes: completions and chat completions, whole or as
stream chunks, with their log-probabilities and usage."""

from __future__ import annotations

import json
import time
import uuid

from tinygpt.serve.batcher import TokenLogprobs
from tinygpt.tokenizer import Tokenizer


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def envelope(id_: str, obj: str, model: str, created: int | None = None) -> dict:
    return {"id": id_, "object": obj, "created": created or int(time.time()), "model": model}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def sse(payload: dict | str) -> bytes:
    """One server-sent event: `data: {json}` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class TokenStrings:
    """Token ids as the text the API shows for them (a token that is part of a character shows
    U+FFFD; the chat API also gives its bytes)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        s = self.cache.get(token)
        if s is None:
            s = self.cache[token] = self.tokenizer.token_bytes(token).decode("utf-8", errors="replace")
        return s

    def bytes(self, token: int) -> list[int]:
        return list(self.tokenizer.token_bytes(token))


def completion_logprobs(strings: TokenStrings, entries: list[tuple[int, TokenLogprobs | None]], offset: int) -> dict:
    """The completions API's logprobs object; `offset` is where the first token's text starts."""
    tokens, lps, tops, offsets = [], [], [], []
    for token, lp in entries:
        s = strings(token)
        tokens.append(s)
        lps.append(None if lp is None else lp.logprob)
        tops.append(None if lp is None else {strings(t): v for t, v in lp.top})
        offsets.append(offset)
        offset += len(s)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def chat_logprobs(strings: TokenStrings, entries: list[tuple[int, TokenLogprobs]]) -> dict:
    def one(t: int, v: float) -> dict:
        return {"token": strings(t), "logprob": v, "bytes": strings.bytes(t)}

    return {"content": [{**one(t, lp.logprob), "top_logprobs": [one(a, v) for a, v in lp.top]}
                        for t, lp in entries]}
