"""The LLM judge of `tinygpt grade`: its parsing of the answer formats judges give, then whole runs
against real servers on 127.0.0.1: a stub judge (judge_stub_server.py: scores recomputable from
the story, answers in varied and malformed formats, an optional refusal of JSON schemas) for the
scores, retries, the schema fallback and the cache, and `tinygpt serve` (a story model that
cannot grade) for the request path and the failures it must end in."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import judge_stub_server as stub
from serve_helpers import served
from tinygpt.data.stories import generate_story
from tinygpt.grade.judge import (AGE_GROUPS, SCORES, age_value, first_message, judge_stories, parse_scores,
                                 score_value, summarize)
from tinygpt.llmstories.client import FatalAPIError

RETRIES = 3
GRADES = {"grammar": 8, "creativity": 7, "consistency": 9, "plot": 6, "age_group": "C"}


# ---- parsing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    json.dumps(GRADES),
    "Here you go:\n```json\n" + json.dumps(GRADES, indent=2) + "\n```\nThe student did well.",
    'My grades are {"grammar": "8/10", "creativity": 7.0, "consistency": "9 out of 10", "plot": 6.2, '
    '"age_group": "C: 6-7"} as asked.',
    '{"scores": {"Grammar": 8, "Creativity": 7, "Consistency with the beginning": 9, "Plot": 6}, "Age Group": "c"}',
    "Grammar: 8/10\nCreativity: 7/10\nConsistency: 9/10\nPlot: 6/10\nAge group: C (6-7)",
    "1. **Grammar**: 8\n2. **Creativity**: 7\n3. **Consistency with the beginning**: 9\n"
    "4. **Plot (does it make sense?)**: 6 out of 10\n5. **Author's age group**: C",
    "Grammar: 8/10, Creativity: 7/10, Consistency: 9/10, Plot: 6/10, Age group: 6-7",
    "{'grammar': 8, 'creativity': 7, 'consistency': 9, 'plot': 6, 'age_group': 'C'}",  # a Python dict
])
def test_the_formats_judges_answer_in_are_read(text):
    assert parse_scores(text) == (GRADES, "")


@pytest.mark.parametrize("text, reason", [
    (json.dumps({k: v for k, v in GRADES.items() if k != "plot"}), "no plot"),
    (json.dumps({**GRADES, "grammar": 11}), "grammar is not a score"),
    (json.dumps({**GRADES, "creativity": 0}), "creativity is not a score"),
    (json.dumps({**GRADES, "plot": "8/5"}), "plot is not a score"),
    (json.dumps({**GRADES, "plot": True}), "plot is not a score"),
    (json.dumps({**GRADES, "age_group": "G"}), "age_group is not a letter"),
    (json.dumps({**GRADES, "age_group": 3}), "age_group is not a letter"),
    ("What a lovely story! I would not put numbers on it.", "no scores found"),
    ("The plot makes sense and the grammar is good, so 8.", "no scores found"),
    ("", "no scores found"),
])
def test_a_malformed_answer_is_refused_with_its_reason(text, reason):
    scores, why = parse_scores(text)
    assert scores is None and why.startswith(reason), why


def test_score_and_age_values():
    assert [score_value(v) for v in (8, 8.0, "8", " 8/10", "8.4", 9.5, "10 out of 10")] == [8, 8, 8, 8, 8, 10, 10]
    assert [score_value(v) for v in (0, 11, 10.6, "8/5", "eight", None, float("nan"), False, [8])] == [None] * 9
    assert [age_value(v) for v in ("C", "c", "(d)", "Group E", "B: 4-5", "13-16", "3 or under")] == list("CCDEBFA")
    assert [age_value(v) for v in ("G", "a child", "Cat", "", None, 3)] == [None] * 6


grades = st.fixed_dictionaries({**{k: st.integers(1, 10) for k in SCORES},
                                "age_group": st.sampled_from(list(AGE_GROUPS))})


@settings(max_examples=150, deadline=None)
@given(grades, st.sampled_from(stub.GOOD), st.text(max_size=40).filter(lambda t: "{" not in t))
def test_every_well_formed_answer_gives_back_its_grades(g, fmt, prose):
    assert parse_scores(stub.render(fmt, g)) == (g, "")
    if fmt != "lines":  # prose around a JSON object changes nothing
        assert parse_scores(prose + "\n" + stub.render(fmt, g) + "\n" + prose) == (g, "")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.builds(lambda d: json.dumps(d), st.dictionaries(
    st.sampled_from([*SCORES, "age_group", "Grammar", "age"]), st.integers(-5, 20) | st.text(max_size=5))))
def test_any_answer_is_either_valid_grades_or_a_reason(text):
    scores, why = parse_scores(text)
    if scores is None:
        assert why
    else:
        assert all(1 <= scores[k] <= 10 for k in SCORES) and scores["age_group"] in AGE_GROUPS and not why


# ---- against the stub judge -------------------------------------------------------------------

def story_items(n: int, start: int = 0) -> list[tuple[str, str]]:
    out = []
    for i in range(start, start + n):
        words = generate_story(seed=3, index=i).text.split()
        cut = max(3, len(words) // 3)
        out.append((" ".join(words[:cut]), " ".join(words[cut:])))
    return out


def expected(beginning: str, completion: str, retries: int = RETRIES) -> dict:
    """What the stub's rule makes of a story on a fresh stub: its grades at the first attempt
    that is well formed, else a failure after every attempt."""
    story = first_message(beginning, completion)
    for attempt in range(1, retries + 2):
        if stub.format_for(story, attempt) in stub.GOOD:
            return {**stub.scores_for(story), "attempts": attempt}
    last = stub.format_for(story, retries + 1)
    return {"error": True, "attempts": retries + 1, "raw": stub.render(last, stub.scores_for(story))}


def stats(url: str) -> dict:
    return httpx.get(url + "/stats", timeout=5).json()


def check(results: list[dict], items: list[tuple[str, str]], cached: bool = False) -> None:
    for r, item in zip(results, items, strict=True):
        want = expected(*item)
        if "error" in want:
            assert "error" in r and r["attempts"] == want["attempts"], r
            assert r["error"] and r["raw"], r
            continue
        assert "error" not in r, r
        assert {k: r[k] for k in (*SCORES, "age_group")} == {k: want[k] for k in (*SCORES, "age_group")}
        assert r["cached"] is cached and r["attempts"] == want["attempts"]
        assert r["assessment"] == stub.assessment_for(first_message(*item))


BAD_ITEM = ("Once upon a time there was a cat.", f"The cat sat. {stub.ALWAYS_MALFORMED}")


def test_grades_retries_and_failures_against_the_stub(tmp_path):
    items = story_items(24) + [BAD_ITEM]
    wants = [expected(*it) for it in items]
    assert any(w.get("attempts", 0) > 1 and "error" not in w for w in wants)  # some need a retry
    with stub.running(stub.Stub()) as url:
        results = judge_stories(items, base_url=url + "/v1", model=stub.MODEL, retries=RETRIES, concurrency=8)
        s = stats(url)
    check(results, items)
    bad = results[-1]
    assert bad["attempts"] == RETRIES + 1 and bad["raw"] == expected(*BAD_ITEM)["raw"]
    assert s["assessments"] == len(items) and s["scores"] == sum(w["attempts"] for w in wants)
    assert s["with_schema"] == s["scores"] and s.get("rejected_schema", 0) == 0 and s["models"] == 1
    summary = summarize(results)
    failing = sum("error" in w for w in wants)  # the bad item, and any story the stub's rule never answers well
    assert failing >= 1 and summary["failures"] == failing and summary["judged"] == len(items) - failing
    good = [r for r in results if "error" not in r]
    assert summary["grammar"]["n"] == len(good)
    assert summary["grammar"]["mean"] == pytest.approx(sum(r["grammar"] for r in good) / len(good))
    assert sum(summary["age_groups"].values()) == len(good)


def test_a_refused_schema_costs_one_request_then_plain_requests(tmp_path):
    items = story_items(16, start=100)
    with stub.running(stub.Stub(reject_schema=True)) as url:
        results = judge_stories(items, base_url=url + "/v1", model=stub.MODEL, concurrency=8)
        s = stats(url)
    check(results, items)
    assert s["rejected_schema"] == 1 and s["with_schema"] == 1
    assert s["scores"] == sum(expected(*it)["attempts"] for it in items)


def test_a_rerun_asks_only_for_what_the_cache_lacks(tmp_path):
    cache = tmp_path / "out" / "judge-cache.jsonl"
    items = story_items(10, start=200)
    kw = dict(model=stub.MODEL, cache_path=str(cache), concurrency=4)
    with stub.running(stub.Stub()) as url:
        first = judge_stories(items + [BAD_ITEM], base_url=url + "/v1", **kw)
        check(first, items + [BAD_ITEM])
        lines = cache.read_text().splitlines()
        assert len(lines) == len(items)  # failures are not cached
        assert all(json.loads(line)["model"] == stub.MODEL for line in lines)
        before = stats(url)
        again = judge_stories(items, base_url=url + "/v1", **kw)
        assert stats(url) == before  # not one request, not even the model check
        check(again, items, cached=True)
        judge_stories([BAD_ITEM], base_url=url + "/v1", **kw)  # a failure is asked again
        after = stats(url)
    assert after["assessments"] - before["assessments"] == 1
    assert after["scores"] - before["scores"] == RETRIES + 1
    assert len(cache.read_text().splitlines()) == len(items)


def test_a_torn_last_line_of_a_killed_run_is_dropped_and_redone(tmp_path):
    cache = tmp_path / "judge-cache.jsonl"
    items = story_items(6, start=300)
    with stub.running(stub.Stub()) as url:
        judge_stories(items, base_url=url + "/v1", model=stub.MODEL, cache_path=str(cache))
        data = cache.read_bytes()
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        torn_key = json.loads(last)["key"]
        # a killed run: the last record half written, and a line no run wrote in the middle
        lines = data.splitlines(keepends=True)
        cache.write_bytes(b"".join(lines[:2]) + b"not json\n" + b"".join(lines[2:-1]) + lines[-1][:40])
        before = stats(url)
        results = judge_stories(items, base_url=url + "/v1", model=stub.MODEL, cache_path=str(cache))
        after = stats(url)
    assert after["assessments"] - before["assessments"] == 1  # only the torn one is judged again
    assert sum(not r["cached"] for r in results) == 1
    assert all("error" not in r for r in results)
    records = [json.loads(line) for line in cache.read_text().splitlines() if line != "not json"]
    assert len(records) == len(items) and records[-1]["key"] == torn_key


def test_a_server_that_cannot_be_used_stops_the_run_at_once(tmp_path):
    with stub.running(stub.Stub()) as url:
        with pytest.raises(FatalAPIError, match="does not serve the model"):
            judge_stories(story_items(1), base_url=url + "/v1", model="no-such-judge")
    with pytest.raises(FatalAPIError, match="cannot reach"):
        judge_stories(story_items(1), base_url=url + "/v1", model=stub.MODEL, timeout=2)


# ---- against `tinygpt serve` ------------------------------------------------------------------

def chat_requests(url: str) -> dict[str, float]:
    """The server's count of chat requests by status, from its /metrics."""
    text = httpx.get(url + "/metrics", timeout=5).text
    rx = r'^tinygpt_requests_total\{endpoint="/v1/chat/completions",status="(\d+)"\} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(rx, text, re.M)}


def test_a_story_model_as_judge_ends_every_item_as_a_reported_failure(serve_run):
    items = story_items(4, start=400)
    with served(serve_run, "--dtype", "fp32", "--max-batch", "8") as url:
        # its context is 128 tokens: the prompt is cut to its last 64, the answers to 24
        results = judge_stories(items, base_url=url + "/v1", model=serve_run.name, retries=1, assessment_tokens=24,
                                score_tokens=24, timeout=30, extra_body={"truncate_prompt_tokens": 64})
        counts = chat_requests(url)
        too_long = judge_stories(items[:1], base_url=url + "/v1", model=serve_run.name, retries=1,
                                 assessment_tokens=24, score_tokens=24, timeout=30)
    for r in results:
        assert "error" in r and r["attempts"] == 2, r
        assert isinstance(r["raw"], str) and r["raw"].strip() and isinstance(r["assessment"], str), r
    # the schema refused once (a story server takes only text), then both turns of each item
    assert counts == {"400": 1.0, "200": len(items) * 3.0}, counts
    assert too_long[0]["attempts"] == 0 and "context" in too_long[0]["error"], too_long
    assert summarize(results)["failures"] == len(items)
