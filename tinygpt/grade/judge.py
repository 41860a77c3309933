"""The optional LLM judge: any OpenAI-compatible chat server grades a model's story completions,
as the TinyStories paper had GPT-4 do, made reproducible.

Each (beginning, completion) is judged in two turns of one conversation: first a general
assessment of the student's part (the text after the `***` separator), then scores out of 10
for grammar, creativity, consistency and plot, and a guess of the author's age group (A-F), as a
JSON object. The scores are asked with a strict JSON schema where the server takes one; the
first 400 to it switches the run to plain requests. An answer is parsed leniently (a ```json
fence, prose around the object, "Grammar: 8/10" lines), but a score must be a number that rounds
to 1..10 and the age group a letter A-F: an answer that is not is asked again (`retries` times)
and then reported as a failure with its reason and raw text, never scored by guess. Finished
judgements are cached (`judge_cache`), so a rerun asks only for what is missing."""

from __future__ import annotations

import asyncio
import collections
import datetime
import hashlib
import json
import math
import re
import statistics
from dataclasses import dataclass, field

from tinygpt.grade.judge_cache import JudgeCache, cache_key
from tinygpt.llmstories.client import Client, FatalAPIError, GaveUp

PROMPT_VERSION = 1  # bump when the wording changes: cached judgements of other wording are not reused
SCORES = ("grammar", "creativity", "consistency", "plot")
AGE_GROUPS = {"A": "3 or under", "B": "4-5", "C": "6-7", "D": "8-9", "E": "10-12", "F": "13-16"}
SEPARATOR = "***"

FIRST_TURN = """This is a writing exercise. A student was given the beginning of a short story and \
wrote its continuation. In the text below, the part before the separator {sep} is the beginning \
the student was given and the part after {sep} is what the student wrote. The beginning may stop in \
the middle of a sentence; then the student's part should finish that sentence.

{beginning} {sep} {completion}

In a few sentences, give your general assessment of the student's part, the text after {sep}. Is \
its grammar correct? Does it follow on from the beginning, with the same characters and events? \
Does the story make sense?"""

SECOND_TURN = """Now grade the student's part, the text after {sep}, with a score from 1 (worst) to \
10 (best) for each of:
- grammar;
- creativity;
- consistency with the beginning of the story;
- plot: does the plot make sense?
Also guess the student's age group from the writing: {groups}.
Answer with only a JSON object of this form: {{"grammar": <integer>, "creativity": <integer>, \
"consistency": <integer>, "plot": <integer>, "age_group": "<letter A-F>"}}""".format(
    sep=SEPARATOR, groups=", ".join(f"{k}: {v}" for k, v in AGE_GROUPS.items()))

RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "story_grades", "strict": True, "schema": {
    "type": "object",
    "properties": {**{k: {"type": "integer", "enum": list(range(1, 11))} for k in SCORES},
                   "age_group": {"type": "string", "enum": list(AGE_GROUPS)}},
    "required": [*SCORES, "age_group"], "additionalProperties": False}}}


def first_message(beginning: str, completion: str) -> str:
    """The first turn's user message for one story."""
    return FIRST_TURN.format(sep=SEPARATOR, beginning=beginning.strip(), completion=completion.strip())


def conversation(beginning: str, completion: str, assessment: str) -> list[dict]:
    """The second turn's messages: the first turn, the judge's answer to it, the request for scores."""
    return [{"role": "user", "content": first_message(beginning, completion)},
            {"role": "assistant", "content": assessment}, {"role": "user", "content": SECOND_TURN}]


# ------------------------------------------------------------------------------------------------
# Parsing the scores
# ------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\s*\**\s*(\d+(?:\.\d+)?)\s*\**\s*(?:(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?")
_LETTER = re.compile(r"\W*(?:(?i:age[\s_-]*)?(?i:group)\W*)?([A-F])(?![A-Za-z])")
_RANGE = re.compile(r"(\d+)\s*(?:-|–|to)\s*(\d+)")
_UNDER_3 = re.compile(r"\b3\s*(?:years?\s*)?(?:or|and)\s*(?:under|younger|below)\b", re.I)
# a label at the start of a line or after a separator, so "the plot is fine" in prose is no score
_LABEL = r"(?:^|[,;|])[^\w\n]*(?:\d+[.)]\s*)?[^\w\n]*"
_LINE_SCORE = {k: re.compile(_LABEL + k + r"\b[^\n\d,;|]{0,60}?(\d+(?:\.\d+)?(?:\s*(?:/|out\s+of)\s*\d+(?:\.\d+)?)?)",
                             re.I | re.M) for k in SCORES}
_LINE_AGE = re.compile(_LABEL + r"(?:(?:the\s+)?(?:author|student|writer)'?s?\s+)?age(?:[\s_-]*groups?)?\b"
                       r"([^\n,;|]{0,60})", re.I | re.M)


def score_value(v) -> int | None:
    """A score out of 10: an int, a number that rounds to one, or a string such as "8", "8.0",
    "8/10", "8 out of 10"; None when it is none of these or outside 1..10."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        m = _NUMBER.match(v)
        if not m or (m.group(2) is not None and float(m.group(2)) != 10):
            return None
        v = float(m.group(1))
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    n = math.floor(v + 0.5)  # half up, not Python's round-half-to-even
    return n if 1 <= n <= 10 else None


def age_value(v) -> str | None:
    """An age group letter from "C", "c", "C: 6-7", "(C)", "group C" or an age range ("6-7")."""
    if not isinstance(v, str):
        return None
    s = v.strip()
    bare = re.sub(r"^\W+|\W+$", "", s)  # '"c"', "(c)", "**C**"
    if len(bare) == 1 and bare.upper() in AGE_GROUPS:
        return bare.upper()
    if m := _LETTER.match(s):
        return m.group(1)
    if _UNDER_3.search(s):
        return "A"
    for lo, hi in _RANGE.findall(s):
        for letter, span in AGE_GROUPS.items():
            if span == f"{lo}-{hi}":
                return letter
    return None


def _field(key: str) -> str | None:
    k = re.sub(r"[^a-z]+", "_", str(key).lower()).strip("_")
    for name in SCORES:
        if k.startswith(name):
            return name
    return "age_group" if re.search(r"(^|_)age(_|$)", k) else None


def _json_objects(text: str) -> list[dict]:
    """Every JSON object in the text, fenced or among prose, outermost ones only."""
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = text.find("{", end)
    return out


def _from_object(obj: dict) -> dict:
    """The rubric's fields of a JSON object (one level of nesting looked into: {"scores": {...}})."""
    found = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            found.update({f: v for f, v in _from_object(value).items() if f not in found})
        elif (name := _field(key)) and name not in found:
            found[name] = value
    return found


def _from_lines(text: str) -> dict:
    found = {k: m.group(1) for k, rx in _LINE_SCORE.items() if (m := rx.search(text))}
    if m := _LINE_AGE.search(text):
        found["age_group"] = m.group(1)
    return found


def _validate(found: dict) -> tuple[dict | None, str]:
    missing = [k for k in (*SCORES, "age_group") if k not in found]
    if missing:
        return None, f"no {', '.join(missing)} in the answer"
    out = {k: score_value(found[k]) for k in SCORES}
    for k in SCORES:
        if out[k] is None:
            return None, f"{k} is not a score from 1 to 10: {found[k]!r}"
    out["age_group"] = age_value(found["age_group"])
    if out["age_group"] is None:
        return None, f"age_group is not a letter A-F: {found['age_group']!r}"
    return out, ""


def parse_scores(text: str) -> tuple[dict | None, str]:
    """(the scores and age group, "") from a judge's answer, or (None, the reason it has none).
    A JSON object with the rubric's fields wins (the one with most of them); else lines such as
    "Grammar: 8/10" and "Age group: C"."""
    candidates = [f for f in map(_from_object, _json_objects(text)) if f]
    if candidates:
        return _validate(max(candidates, key=len))
    found = _from_lines(text)
    if not found:
        return None, "no scores found in the answer"
    return _validate(found)


# ------------------------------------------------------------------------------------------------
# Asking the judge
# ------------------------------------------------------------------------------------------------

def _status(e: FatalAPIError) -> int | None:
    # the client says the status only in its message ("the server answered HTTP 400: ...")
    m = re.search(r"\bHTTP (\d{3})\b", str(e))
    return getattr(e, "status", None) or (int(m.group(1)) if m else None)


@dataclass
class _Schema:
    """Whether the server takes the JSON schema: unknown (None) until the first scoring request
    answers; meanwhile the other scoring requests wait, so a refusal costs one request, not one
    per request in flight."""

    ok: bool | None
    probe: asyncio.Event | None = None


@dataclass
class _Judge:
    client: Client
    retries: int
    assessment_tokens: int
    score_tokens: int
    extra_body: dict = field(default_factory=dict)
    schema: _Schema = field(default_factory=lambda: _Schema(None))

    def params(self, key: str, turn: int, max_tokens: int) -> dict:
        # temperature 0 and a fresh seed per attempt: each attempt reproducible, retries not all alike
        seed = int.from_bytes(hashlib.sha256(f"{key}|{turn}".encode()).digest()[:4], "little") >> 1
        return {"max_tokens": max_tokens, "temperature": 0, "seed": seed, **self.extra_body}

    async def score_request(self, messages: list[dict], params: dict):
        schema = {**params, "response_format": RESPONSE_FORMAT}
        while True:
            if self.schema.ok is False:
                return await self.client.complete({"messages": messages}, params)
            if self.schema.ok:
                return await self.client.complete({"messages": messages}, schema)
            if self.schema.probe is not None:
                await self.schema.probe.wait()
                continue
            self.schema.probe = probe = asyncio.Event()
            try:
                reply = await self.client.complete({"messages": messages}, schema)
                self.schema.ok = True
                return reply
            except FatalAPIError as e:
                if _status(e) not in (400, 422):
                    raise
                self.schema.ok = False  # and round again, now plainly
            finally:  # a request that failed otherwise leaves it unknown: the next one probes
                self.schema.probe = None
                probe.set()

    async def judge(self, key: str, beginning: str, completion: str) -> dict:
        """One story's judgement, or its failure with the reason and the raw answer."""
        first = [{"role": "user", "content": first_message(beginning, completion)}]
        try:
            reply = await self.client.complete({"messages": first}, self.params(key, 0, self.assessment_tokens))
        except (GaveUp, FatalAPIError) as e:
            return {"error": f"the assessment request failed: {e}", "raw": "", "attempts": 0}
        assessment = reply.text.strip()
        messages = conversation(beginning, completion, assessment)
        reason, raw = "", ""
        for attempt in range(1, self.retries + 2):
            try:
                reply = await self.score_request(messages, self.params(key, attempt, self.score_tokens))
            except (GaveUp, FatalAPIError) as e:
                return {"error": f"the scoring request failed: {e}", "raw": raw, "attempts": attempt,
                        "assessment": assessment}
            scores, reason = parse_scores(reply.text)
            if scores is not None:
                return {**scores, "assessment": assessment, "cached": False, "attempts": attempt,
                        "served_model": reply.model}
            raw = reply.text
            if reply.finish_reason == "length":
                reason += f" (the answer was cut at max_tokens={self.score_tokens})"
        return {"error": reason, "raw": raw, "attempts": self.retries + 1, "assessment": assessment}


def _from_cache(rec: dict | None) -> dict | None:
    if rec is None:
        return None
    scores, _ = _validate({k: rec.get(k) for k in (*SCORES, "age_group") if k in rec})
    if scores is None:  # a record of another shape: judge again
        return None
    return {**scores, "assessment": rec.get("assessment", ""), "cached": True, "attempts": rec.get("attempts", 1)}


async def _workers(n: int, queue: collections.deque, work) -> None:
    tasks = [asyncio.ensure_future(_drain(queue, work)) for _ in range(min(n, len(queue)))]
    try:
        await asyncio.gather(*tasks)
    finally:  # an error in one stops them all; what is finished is in the cache already
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _drain(queue: collections.deque, work) -> None:
    while queue:
        await work(*queue.popleft())


async def ajudge_stories(items: list[tuple[str, str]], *, base_url: str, model: str, api_key: str | None = None,
                         cache_path: str | None = None, retries: int = 3, concurrency: int = 8,
                         timeout: float = 60, progress: bool = False, assessment_tokens: int = 400,
                         score_tokens: int = 100, schema: bool = True, extra_body: dict | None = None) -> list[dict]:
    """`judge_stories` for a caller already in an event loop."""
    from tqdm import tqdm

    if retries < 0 or concurrency < 1:
        raise ValueError(f"retries must be >= 0 and concurrency >= 1, got {retries} and {concurrency}")
    client = Client(base_url, model, api="chat", api_key=api_key, timeout_s=timeout, concurrency=concurrency)
    cache = JudgeCache(cache_path)
    keys = [cache_key(PROMPT_VERSION, model, b, c) for b, c in items]
    results: list[dict | None] = [_from_cache(cache.get(k)) for k in keys]
    todo: dict[str, list[int]] = {}  # the same story twice is asked once
    for i, (k, r) in enumerate(zip(keys, results)):
        if r is None:
            todo.setdefault(k, []).append(i)
    judge = _Judge(client, retries, assessment_tokens, score_tokens, dict(extra_body or {}),
                   _Schema(None if schema else False))
    with tqdm(total=len(items), initial=len(items) - sum(map(len, todo.values())), unit=" stories",
              desc="judging", disable=not progress) as bar:
        async def work(key: str, where: list[int]) -> None:
            res = await judge.judge(key, *items[where[0]])
            if "error" not in res:
                cache.put(key, _record(res, model, base_url))
            for i in where:
                results[i] = dict(res)
            bar.update(len(where))

        try:
            if todo:
                await client.check_model()
                await _workers(concurrency, collections.deque(todo.items()), work)
        finally:
            await client.aclose()
            cache.close()
    for r in results:
        r.pop("served_model", None)
    return results


def _record(res: dict, model: str, base_url: str) -> dict:
    return {"prompt_version": PROMPT_VERSION, "model": model, "served_model": res.get("served_model"),
            "base_url": base_url, **{k: res[k] for k in (*SCORES, "age_group", "assessment", "attempts")},
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def judge_stories(items: list[tuple[str, str]], *, base_url: str, model: str, api_key: str | None = None,
                  cache_path: str | None = None, retries: int = 3, concurrency: int = 8, timeout: float = 60,
                  progress: bool = False, assessment_tokens: int = 400, score_tokens: int = 100,
                  schema: bool = True, extra_body: dict | None = None) -> list[dict]:
    """Judges each (beginning, completion) with the chat model `model` at `base_url` (".../v1").

    Each result is {"grammar", "creativity", "consistency", "plot": 1..10, "age_group": "A".."F",
    "assessment": the first answer, "cached": bool, "attempts": scoring requests it took} or
    {"error": the reason, "raw": the last answer, "attempts": n}. `cache_path`: a JSON-lines file
    of finished judgements (None: no cache); `retries`: re-asks of a malformed answer;
    `timeout`: seconds a request; `assessment_tokens`, `score_tokens`: each turn's max_tokens;
    `schema`: ask for the scores with a JSON schema where the server takes one; `extra_body`:
    more request fields (e.g. {"truncate_prompt_tokens": 64}). Raises FatalAPIError when the
    server cannot be reached, refuses the key or does not serve the model."""
    return asyncio.run(ajudge_stories(
        items, base_url=base_url, model=model, api_key=api_key, cache_path=cache_path, retries=retries,
        concurrency=concurrency, timeout=timeout, progress=progress, assessment_tokens=assessment_tokens,
        score_tokens=score_tokens, schema=schema, extra_body=extra_body))


def summarize(results: list[dict]) -> dict:
    """Mean, (population) standard deviation and count of each score over the judged stories,
    the age groups' counts, and the failures' count and reasons."""
    judged = [r for r in results if "error" not in r]
    out = {"n": len(results), "judged": len(judged), "cached": sum(bool(r.get("cached")) for r in judged),
           "failures": len(results) - len(judged)}
    for k in SCORES:
        values = [r[k] for r in judged]
        out[k] = {"mean": statistics.fmean(values) if values else None,
                  "std": statistics.pstdev(values) if values else None, "n": len(values)}
    out["age_groups"] = {g: sum(r["age_group"] == g for r in judged) for g in AGE_GROUPS}
    out["failure_reasons"] = dict(collections.Counter(r["error"] for r in results if "error" in r).most_common(10))
    return out
