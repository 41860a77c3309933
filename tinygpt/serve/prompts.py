"""From an API request to the sequences the batcher continues: prompts as token ids (text gets the
start-of-story marker, as `tinygpt generate` does), a chat flattened into one story, the context
checked, and the sampling settings and seed of each choice.

A chat with a story model is one story told in turns: the text of the user and assistant messages,
in order, is the story so far (system and developer messages are left out), and the reply
continues it. Two messages are joined with a space unless one side already has whitespace there."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinygpt.generate import SamplingSettings, encode_prompt
from tinygpt.serve.errors import APIError
from tinygpt.serve.protocol import ChatRequest, CompletionRequest, Sampling
from tinygpt.tokenizer import Tokenizer


@dataclass
class Prompt:
    ids: list[int]
    text: str  # what echo gives back: the prompt's text, without the start-of-story marker


def flatten_chat(req: ChatRequest) -> str:
    story = ""
    for m in req.messages:
        if m.role in ("system", "developer"):
            continue
        text = m.text
        if story and text and not story[-1].isspace() and not text[0].isspace():
            story += " "
        story += text
    return story


def encode_text(tokenizer: Tokenizer, text: str, param: str) -> list[int]:
    try:
        return encode_prompt(tokenizer, text)
    except ValueError as e:  # a special token in the text, or no way to start an empty story
        raise APIError(400, str(e), param=param, code="invalid_prompt") from None


def completion_prompts(req: CompletionRequest, tokenizer: Tokenizer, vocab_size: int) -> list[Prompt]:
    p = req.prompt
    if isinstance(p, str):
        return [Prompt(encode_text(tokenizer, p, "prompt"), p)]
    if isinstance(p[0], str):
        return [Prompt(encode_text(tokenizer, t, "prompt"), t) for t in p]
    lists = [p] if isinstance(p[0], int) else p
    for ids in lists:
        if max(ids) >= vocab_size:
            raise APIError(400, f"prompt token ids must be below the vocabulary size {vocab_size}", param="prompt",
                           code="invalid_prompt")
    return [Prompt(list(ids), tokenizer.decode(ids)) for ids in lists]


def fit_context(prompt: Prompt, req: Sampling, context: int, tokenizer: Tokenizer, param: str) -> Prompt:
    """Keeps the last `truncate_prompt_tokens` tokens if asked; refuses a prompt that leaves no room
    for a new token."""
    k = req.truncate_prompt_tokens
    if k is not None:
        if k >= context:
            raise APIError(400, f"truncate_prompt_tokens must be below the model's context of {context} tokens, "
                           f"got {k}", param="truncate_prompt_tokens", code="invalid_value")
        if len(prompt.ids) > k:
            ids = prompt.ids[-k:]
            return Prompt(ids, tokenizer.decode(ids))
    if len(prompt.ids) >= context:
        raise APIError(400, f"this model's context is {context} tokens and the prompt has {len(prompt.ids)}: "
                       f"shorten it or set truncate_prompt_tokens", param=param, code="context_length_exceeded")
    return prompt


def check_max_tokens(max_tokens: int, context: int, param: str) -> None:
    if max_tokens > context:
        raise APIError(400, f"{param} must be at most the model's context of {context} tokens, got {max_tokens}",
                       param=param, code="invalid_value")


def settings(req: Sampling, max_tokens: int) -> SamplingSettings:
    return SamplingSettings(max_new_tokens=max_tokens, temperature=req.temperature, top_k=max(req.top_k, 0),
                            top_p=req.top_p, min_p=req.min_p, repetition_penalty=req.repetition_penalty,
                            frequency_penalty=req.frequency_penalty, presence_penalty=req.presence_penalty)


def base_seed(req: Sampling) -> int:
    """Choice i of a request uses seed + i, as sample i of `tinygpt generate --seed` does."""
    return req.seed if req.seed is not None else int.from_bytes(os.urandom(6), "little")
