"""`POST /v1/completions` and `POST /v1/chat/completions`: a request checked and turned into
choices (`choices.Call`), then answered whole or streamed as server-sent events. A client that
goes away, mid-stream or while waiting for a whole answer, cancels its choices, which frees their
batch rows at the next decode step."""

from __future__ import annotations

import asyncio
import time

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from tinygpt.serve import prompts as P
from tinygpt.serve.choices import Call, Update
from tinygpt.serve.engine import Engine
from tinygpt.serve.errors import APIError, error_body
from tinygpt.serve.protocol import ChatRequest, CompletionRequest, Sampling
from tinygpt.serve.responses import (chat_logprobs, completion_logprobs, envelope, new_id, sse, usage)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def check_model(body: Sampling, engine: Engine) -> None:
    if body.model is not None and body.model != engine.name:
        raise APIError(404, f"the model {body.model!r} does not exist; this server serves {engine.name!r}",
                       param="model", code="model_not_found")


def _call(body: Sampling, engine: Engine, prompts: list[P.Prompt], max_tokens: int, logprobs: int | None) -> Call:
    return Call(prompts, body.n, P.settings(body, max_tokens), P.base_seed(body), tokenizer=engine.tokenizer,
                stops=body.stops, logprobs=logprobs, ignore_eot=body.ignore_eos, metrics=engine.metrics)


async def _watch_disconnect(request: Request, call: Call) -> None:
    """Cancels the call when the client goes away (the body has been read: what comes next on
    the connection is its end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    call.cancel()


def _watch(request: Request, call: Call) -> asyncio.Task:
    return asyncio.ensure_future(_watch_disconnect(request, call))


async def _collect(call: Call, request: Request) -> bool:
    """Runs the call to its end; False if the client went away first (the call is cancelled)."""
    async def consume():
        async for _ in call.updates():
            pass

    task, watcher = asyncio.ensure_future(consume()), _watch(request, call)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            return False
        task.result()  # a failed decode raises here
        return True
    finally:
        for t in (task, watcher):
            t.cancel()
        call.cancel()  # a no-op for choices that have ended


def _streamed(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


async def _sse_events(call: Call, request: Request, chunks, include_usage: bool, usage_chunk):
    """The events of a stream: the chunks, the usage, `[DONE]`; a failure as an error event. The
    choices are cancelled when the client goes away or the stream ends otherwise, which frees
    their rows."""
    watcher = _watch(request, call)
    try:
        async for chunk in chunks:
            yield sse(chunk)
        if include_usage:
            yield sse(usage_chunk())
        yield sse("[DONE]")
    except APIError as e:
        yield sse(error_body(e.status, e.message, e.param, e.code))
        yield sse("[DONE]")
    finally:
        watcher.cancel()
        call.cancel()


# ------------------------------------------------------------------------------------------------
# /v1/completions
# ------------------------------------------------------------------------------------------------

async def completions(body: CompletionRequest, request: Request, engine: Engine):
    check_model(body, engine)
    tok, ctx = engine.tokenizer, engine.context
    prompts = [P.fit_context(p, body, ctx, tok, "prompt") for p in P.completion_prompts(body, tok, engine.vocab_size)]
    P.check_max_tokens(body.max_tokens, ctx, "max_tokens")
    call = _call(body, engine, prompts, body.max_tokens, body.logprobs)
    echoed = await _echo_logprobs(body, engine, prompts)
    call.start(engine.scheduler)
    rid, created = new_id("cmpl"), int(time.time())
    head = envelope(rid, "text_completion", engine.name, created)
    prompt_tokens = sum(len(p.ids) for p in prompts)
    if body.stream:
        chunks = _completion_chunks(call, body, engine, head, echoed)
        return _streamed(_sse_events(call, request, chunks, body.include_usage, lambda: {
            **head, "choices": [], "usage": usage(prompt_tokens, call.completion_tokens)}))
    if not await _collect(call, request):
        return JSONResponse({}, status_code=499)  # nobody is listening
    choices = [_completion_choice(c, body, engine, echoed) for c in call.choices]
    return {**head, "choices": choices, "usage": usage(prompt_tokens, call.completion_tokens)}


async def _echo_logprobs(body: CompletionRequest, engine: Engine, prompts: list[P.Prompt]) -> list[list] | None:
    """Per prompt, the log-probabilities of its tokens, when echo and logprobs are both asked for
    (the start-of-story marker that text prompts get is left out: it is not in the text)."""
    if not (body.echo and body.logprobs is not None):
        return None
    out = []
    for p in prompts:
        entries = await asyncio.to_thread(engine.prompt_logprobs, p.ids, body.logprobs)
        drop = engine.tokenizer.eot_token is not None and p.ids[0] == engine.tokenizer.eot_token
        out.append(entries[1:] if drop else entries)
    return out


def _completion_choice(c, body: CompletionRequest, engine: Engine, echoed) -> dict:
    prefix = c.prompt.text if body.echo else ""
    logprobs = None
    if body.logprobs is not None:
        entries = (echoed[c.index // body.n] if echoed else []) + c.logprobs
        logprobs = completion_logprobs(engine.strings, entries, 0)
    return {"index": c.index, "text": prefix + c.text.text, "logprobs": logprobs, "finish_reason": c.finish_reason}


async def _completion_chunks(call: Call, body: CompletionRequest, engine: Engine, head: dict, echoed):
    offsets = {}
    if body.echo:
        for c in call.choices:
            entries = echoed[c.index // body.n] if echoed else None
            lp = completion_logprobs(engine.strings, entries, 0) if entries else None
            offsets[c.index] = len(c.prompt.text)
            yield {**head, "choices": [{"index": c.index, "text": c.prompt.text, "logprobs": lp, "finish_reason": None}]}
    async for u in call.updates():
        if not (u.text or u.logprobs or u.finished):
            continue  # text held back: it may begin a stop sequence
        lp = None
        if body.logprobs is not None:
            start = offsets.get(u.choice.index, 0)
            lp = completion_logprobs(engine.strings, u.logprobs, start)
            offsets[u.choice.index] = start + sum(len(engine.strings(t)) for t, _ in u.logprobs)
        yield {**head, "choices": [{"index": u.choice.index, "text": u.text, "logprobs": lp,
                                    "finish_reason": u.choice.finish_reason if u.finished else None}]}


# ------------------------------------------------------------------------------------------------
# /v1/chat/completions
# ------------------------------------------------------------------------------------------------

async def chat(body: ChatRequest, request: Request, engine: Engine):
    check_model(body, engine)
    tok, ctx = engine.tokenizer, engine.context
    text = P.flatten_chat(body)
    prompt = P.fit_context(P.Prompt(P.encode_text(tok, text, "messages"), text), body, ctx, tok, "messages")
    limit = body.token_limit
    param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    if limit is not None:
        P.check_max_tokens(limit, ctx, param)
    max_tokens = limit if limit is not None else ctx - len(prompt.ids)
    k = (body.top_logprobs or 0) if body.logprobs else None
    call = _call(body, engine, [prompt], max_tokens, k)
    call.start(engine.scheduler)
    head = envelope(new_id("chatcmpl"), "chat.completion", engine.name)
    prompt_tokens = len(prompt.ids)
    if body.stream:
        head = {**head, "object": "chat.completion.chunk"}
        return _streamed(_sse_events(call, request, _chat_chunks(call, body, engine, head), body.include_usage, lambda: {
            **head, "choices": [], "usage": usage(prompt_tokens, call.completion_tokens)}))
    if not await _collect(call, request):
        return JSONResponse({}, status_code=499)
    choices = [{"index": c.index, "message": {"role": "assistant", "content": c.text.text},
                "logprobs": chat_logprobs(engine.strings, c.logprobs) if body.logprobs else None,
                "finish_reason": c.finish_reason} for c in call.choices]
    return {**head, "choices": choices, "usage": usage(prompt_tokens, call.completion_tokens)}


async def _chat_chunks(call: Call, body: ChatRequest, engine: Engine, head: dict):
    for c in call.choices:
        yield {**head, "choices": [{"index": c.index, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}
    async for u in call.updates():
        if u.text or u.logprobs:
            lp = chat_logprobs(engine.strings, u.logprobs) if body.logprobs else None
            yield {**head, "choices": [{"index": u.choice.index, "delta": {"content": u.text}, "logprobs": lp,
                                        "finish_reason": None}]}
        if u.finished:
            yield _chat_end(head, u)


def _chat_end(head: dict, u: Update) -> dict:
    return {**head, "choices": [{"index": u.choice.index, "delta": {}, "logprobs": None,
                                 "finish_reason": u.choice.finish_reason}]}
