"""`tinygpt stories --llm`: the recipe, the checks, the journal and the rate limits on their own,
then the whole pipeline against real servers on 127.0.0.1: a fault-injecting OpenAI-style server
(every index ends exactly once, kept or rejected with its reason, through kills and reruns) and
`tinygpt serve` (the output prepares and trains)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest
import uvicorn

from llm_fault_server import MODEL, Faults, create_app
from serve_helpers import CWD, ENV, cli_args, free_port, served
from tinygpt.llmstories import ratelimit
from tinygpt.llmstories.checks import REASONS, Bounds, Dedup, check, clean
from tinygpt.llmstories.client import Client, FatalAPIError, GaveUp, RetryPolicy
from tinygpt.llmstories.journal import Journal, JournalError
from tinygpt.llmstories.pipeline import Config, run
from tinygpt.llmstories.recipe import TemplateError, load_templates, plan_for, render

ALL_FAULTS = {"429": 0.04, "500": 0.04, "503": 0.04, "hang": 0.02, "malformed": 0.04, "truncated": 0.04,
              "slow": 0.04, "length": 0.05, "refusal": 0.05, "duplicate": 0.05}


@contextlib.contextmanager
def fault_server(rates: dict, seed: int = 0, hang_s: float = 2.0, api_key: str | None = None):
    faults = Faults(rates, seed, hang_s, api_key)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(faults), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the fault server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", faults
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_jsonl(path) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def indices(out) -> tuple[list[int], list[int]]:
    kept = [r["index"] for r in read_jsonl(out)]
    rejected = [r["index"] for r in read_jsonl(str(out).replace(".jsonl", ".rejected.jsonl"))]
    return kept, rejected


# ------------------------------------------------------------------------------------------------
# the parts
# ------------------------------------------------------------------------------------------------

def test_a_plan_is_a_pure_function_of_the_seed_and_the_index():
    assert plan_for(3, 17) == plan_for(3, 17)
    plans = [plan_for(3, i) for i in range(300)]
    assert len({(p.verb, p.noun, p.adjective) for p in plans}) > 250  # diverse
    assert {len(p.features) for p in plans} == {0, 1, 2, 3}
    assert plan_for(4, 17) != plan_for(3, 17)
    p = plans[0]
    part = render(p, load_templates(None), "chat")
    user = part["messages"][-1]["content"]
    assert f'"{p.verb}"' in user and f'"{p.noun}"' in user and f'"{p.adjective}"' in user
    assert render(p, load_templates(None), "completions")["prompt"].startswith(user)


def test_templates_come_from_a_file_and_bad_ones_are_refused(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"user": "A story with {verb}, {noun} and {adjective}. {features}", "system": ""}))
    t = load_templates(str(f))
    part = render(plan_for(0, 1), t, "chat")
    assert part["messages"] == [{"role": "user", "content": part["messages"][0]["content"]}]
    assert part["messages"][0]["content"].startswith("A story with " + plan_for(0, 1).verb)
    f.write_text(json.dumps({"usr": "x"}))
    with pytest.raises(TemplateError, match="unknown template keys"):
        load_templates(str(f))
    f.write_text(json.dumps({"user": "{colour}"}))
    with pytest.raises(TemplateError, match="unknown field"):
        load_templates(str(f))
    f.write_text("{not json")
    with pytest.raises(TemplateError, match="cannot read"):
        load_templates(str(f))


STORY = ("Once upon a time, a little girl named Sue ran to the park with her red ball. She liked to play. "
         "The sun was warm and the birds sang. Sue threw the ball high and it came back down. Her mom "
         "smiled and said they could come back tomorrow. Sue was very happy and she hugged her mom. The "
         "end of the day was calm and nice, and everyone went home to sleep.")


def _plan(verb="run", noun="ball", adjective="red"):
    from dataclasses import replace

    base = plan_for(0, 0)
    forms = {verb: {verb, "ran", "running", "runs"}, noun: {noun, noun + "s"}, adjective: {adjective}}
    return replace(base, verb=verb, noun=noun, adjective=adjective, forms=forms)


@pytest.mark.parametrize("text,finish,reason", [
    (STORY, "stop", None),
    (STORY, "length", "finish_reason"),
    ("I'm sorry, but I can't write that. " + STORY, "stop", "refusal"),
    ("Sue ran with her red ball.", "stop", "too_short"),
    (STORY * 12, "stop", "too_long"),
    ("## A story\n" + STORY, "stop", "not_a_story"),
    ("- " + STORY, "stop", "not_a_story"),
    (STORY.replace("red ", "blue "), "stop", "missing_words"),
])
def test_the_checks_name_the_reason(text, finish, reason):
    got, detail = check(text, finish, _plan(), Bounds(40, 400))
    assert got == reason, detail


def test_inflected_forms_and_phrases_count_as_the_words():
    text = STORY.replace("ball", "fire stations")  # the plural of a two-word noun
    plan = _plan(noun="fire station")
    plan.forms["fire station"] = {"fire station", "fire stations"}
    assert check(text, "stop", plan, Bounds(40, 400)) == (None, "")
    real = plan_for(0, 5)  # the vocabulary's own forms: a verb's past tense is one
    assert {real.verb} < real.forms[real.verb]


def test_a_chat_model_s_framing_line_is_dropped():
    assert clean("Sure! Here is a short story for you:\n\n" + STORY) == STORY
    assert clean("The Red Ball\n\n" + STORY) == STORY
    assert clean(STORY) == STORY


def test_exact_and_near_duplicates_are_caught():
    d = Dedup(0.8)
    assert d.seen(0, STORY) == (None, "")
    assert d.seen(1, STORY.upper())[0] == "duplicate"  # the same words
    near = STORY.replace("The sun was warm", "The sun was hot")
    assert d.seen(2, near) == ("near_duplicate", "nearly the same as story 0")
    assert d.seen(3, "A cat sat on a mat and looked at the moon all night long, then it slept. " * 3)[0] is None


def test_the_journal_drops_a_torn_last_line_and_refuses_a_broken_middle_one(tmp_path):
    p = tmp_path / "j.jsonl"
    j = Journal(str(p))
    for i in (4, 1, 7):
        j.append({"index": i, "story": f"s{i}"})
    j.close()
    with open(p, "ab") as f:
        f.write(b'{"index": 9, "sto')  # a kill mid-line
    seen = []
    j = Journal(str(p), on_record=seen.append)
    assert j.done == {1, 4, 7} and [r["index"] for r in seen] == [4, 1, 7]
    j.append({"index": 9, "story": "s9"})
    j.close()
    assert [r["index"] for r in read_jsonl(p)] == [4, 1, 7, 9]
    lines = p.read_text().splitlines()
    p.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(JournalError, match="line 2"):
        Journal(str(p))


def test_the_token_bucket_spaces_out_takers(monkeypatch):
    now = [0.0]
    waits = []

    async def fake_sleep(s):
        waits.append(s)
        now[0] += s

    monkeypatch.setattr(ratelimit.asyncio, "sleep", fake_sleep)
    b = ratelimit.TokenBucket(60, clock=lambda: now[0])  # 1 a second, 10 s of burst

    async def take(n):
        for _ in range(n):
            await b.take(1)

    asyncio.run(take(15))
    assert waits == pytest.approx([1.0] * 5)  # the burst of 10, then one a second
    big = ratelimit.TokenBucket(600, clock=lambda: now[0])  # 10 a second, capacity 100
    waits.clear()
    asyncio.run(big.take(250))  # more than the capacity: taken into debt at once
    asyncio.run(big.take(1))
    assert waits == pytest.approx([15.1])  # the debt of 150 and the one token, paid at 10 a second


def test_backoff_doubles_with_jitter_and_retry_after_wins():
    p = RetryPolicy(base_s=1, cap_s=8)
    random.seed(1)
    for attempt, full in enumerate([1, 2, 4, 8, 8]):
        d = p.delay(attempt, None)
        assert full / 2 <= d <= full
    assert p.delay(0, 3.5) == 3.5
    assert p.delay(0, 10_000) == p.max_retry_after_s


# ------------------------------------------------------------------------------------------------
# against the fault-injecting server
# ------------------------------------------------------------------------------------------------

def test_every_index_ends_once_kept_or_rejected_with_its_reason_despite_faults(tmp_path):
    out = tmp_path / "stories.jsonl"
    with fault_server(ALL_FAULTS, seed=1, hang_s=1.5) as (url, faults):
        s = run(Config(llm=url, model=MODEL, count=150, out=str(out), concurrency=8, timeout_s=0.8,
                       max_retries=12, progress=False))
    kept, rejected = indices(out)
    assert sorted(kept + rejected) == list(range(150))  # none lost, none twice
    assert s.kept == len(kept) and sum(s.rejected.values()) == len(rejected) and s.decided == 150
    served = faults.stats
    assert all(served[k] > 0 for k in ALL_FAULTS), served  # every fault was met
    assert s.retries >= sum(served[k] for k in ("429", "500", "503", "malformed", "truncated"))
    reasons = {r["reason"] for r in read_jsonl(tmp_path / "stories.rejected.jsonl")}
    assert {"refusal", "finish_reason", "near_duplicate"} <= reasons <= set(REASONS)
    for r in read_jsonl(out):
        assert r["finish_reason"] == "stop" and r["model"] == MODEL and r["id"]
        assert r["usage"]["completion_tokens"] > 0 and r["words"]["verb"] and r["prompt"]
        plan = plan_for(0, r["index"])
        assert r["words"] == plan.to_json()["words"] and r["features"] == list(plan.features)


def test_retry_after_is_waited_and_a_request_that_never_succeeds_is_rejected(tmp_path):
    with fault_server({"429": 1.0}) as (url, faults):
        async def one():
            c = Client(url, MODEL, policy=RetryPolicy(max_retries=1))
            try:
                t = time.perf_counter()
                with pytest.raises(GaveUp, match="HTTP 429: Rate limit reached"):
                    await c.complete({"messages": [{"role": "user", "content": "x"}]}, {})
                return time.perf_counter() - t
            finally:
                await c.aclose()
        assert asyncio.run(one()) >= 1.0  # the server's Retry-After: 1
        out = tmp_path / "s.jsonl"
        s = run(Config(llm=url, model=MODEL, count=3, out=str(out), max_retries=0, progress=False))
    assert s.rejected == {"request_failed": 3}
    assert all("HTTP 429" in r["detail"] for r in read_jsonl(tmp_path / "s.rejected.jsonl"))


def _cli(*args, env=None, timeout=120):
    return subprocess.run(cli_args("stories", *args), capture_output=True, text=True, env=env or ENV, cwd=CWD,
                          timeout=timeout)


def test_bad_arguments_stop_at_once_with_the_server_s_message(tmp_path):
    out = str(tmp_path / "s.jsonl")
    t = time.perf_counter()
    r = _cli("--llm", f"http://127.0.0.1:{free_port()}/v1", "--model", MODEL, "--count", "3", "--out", out)
    assert r.returncode == 1 and "cannot reach" in r.stderr and time.perf_counter() - t < 30
    with fault_server({}, api_key="sk-right") as (url, _):
        env = {**ENV, "STORY_KEY": "sk-wrong-secret"}
        r = _cli("--llm", url, "--model", MODEL, "--count", "3", "--out", out, "--api-key-env", "STORY_KEY", env=env)
        assert r.returncode == 1 and "Incorrect API key provided." in r.stderr, r.stderr
        assert "sk-wrong-secret" not in r.stderr + r.stdout
        env["STORY_KEY"] = "sk-right"
        r = _cli("--llm", url, "--model", "gpt-nope", "--count", "3", "--out", out, "--api-key-env", "STORY_KEY",
                 env=env)
        assert r.returncode == 1 and "does not serve the model 'gpt-nope'" in r.stderr and MODEL in r.stderr
        r = _cli("--llm", url, "--model", MODEL, "--count", "5", "--out", out, "--api-key-env", "STORY_KEY",
                 "--quiet", env=env)
        assert r.returncode == 0, r.stderr
    assert "sk-right" not in open(out).read()
    r = _cli("--llm", url, "--count", "3", "--out", out)
    assert r.returncode == 1 and "--model" in r.stderr
    r = _cli("--llm", url, "--model", MODEL, "--out", str(tmp_path / "s.txt"))
    assert r.returncode == 1 and ".jsonl" in r.stderr


def test_kills_at_random_moments_then_reruns_give_every_index_once(tmp_path):
    out = tmp_path / "stories.jsonl"
    args = ["--llm", None, "--model", MODEL, "--count", "120", "--out", str(out), "--concurrency", "6",
            "--timeout", "0.8", "--max-retries", "12", "--quiet"]
    rng = random.Random(5)
    with fault_server({**ALL_FAULTS, "slow": 0.2}, seed=2, hang_s=1.0) as (url, _):
        args[1] = url
        kills = 0
        for _ in range(4):  # killed at random moments, then a run to the end
            proc = subprocess.Popen(cli_args("stories", *args), env=ENV, cwd=CWD, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(2.5, 4.5))  # the command's start-up (imports) takes ~2 s
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
        with fault_server(ALL_FAULTS, seed=3, hang_s=1.0) as (url2, _):
            whole = tmp_path / "whole.jsonl"  # the same command, never interrupted
            r = _cli(*[url2 if a == url else str(whole) if a == str(out) else a for a in args])
            assert r.returncode == 0, r.stderr
    assert kills >= 1
    kept, rejected = indices(out)
    assert len(kept) + len(rejected) == len(set(kept) | set(rejected))  # no index twice
    assert set(kept) | set(rejected) == set(sum(indices(whole), [])) == set(range(120))


def test_stories_from_tinygpt_serve_prepare_and_train(serve_run, tmp_path):
    out, templates = tmp_path / "llm.jsonl", tmp_path / "story_model.json"
    # a story model is given the start of a story, not an instruction
    templates.write_text(json.dumps({"completion": "", "story_start": "Once upon a time, there was a {adjective} {noun}."}))
    with served(serve_run, "--dtype", "fp32", "--max-batch", "8") as url:
        r = _cli("--llm", url + "/v1", "--model", serve_run.name, "--api", "completions", "--count", "16",
                 "--out", str(out), "--max-tokens", "80", "--min-words", "3", "--no-word-check", "--concurrency",
                 "8", "--temperature", "0.9", "--templates", str(templates))
    assert r.returncode == 0, r.stderr
    assert "stories kept" in r.stderr and "tokens:" in r.stderr
    kept, rejected = indices(out)
    assert sorted(kept + rejected) == list(range(16)) and len(kept) >= 4, r.stderr
    for rec in read_jsonl(out):
        plan = plan_for(0, rec["index"])
        assert rec["story"].startswith(f"Once upon a time, there was a {plan.adjective} {plan.noun}.")
        assert rec["prompt"] == f"Once upon a time, there was a {plan.adjective} {plan.noun}."
    shards = tmp_path / "shards"
    p = subprocess.run(cli_args("prepare", str(out), "--out", str(shards), "--vocab-size", "300",
                                "--val-fraction", "0.2"), capture_output=True, text=True, env=ENV, cwd=CWD,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    t = subprocess.run(cli_args("train", "--data", str(shards), "--out", str(tmp_path / "run"), "--model", "260k",
                                "--steps", "3", "--batch-size", "2", "--seq-len", "32", "--device", "cpu",
                                "--dtype", "fp32", "--quiet"),
                       capture_output=True, text=True, env=ENV, cwd=CWD, timeout=300)
    assert t.returncode == 0, t.stderr
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file() or (tmp_path / "run" / "last").exists()


def test_a_server_error_that_retrying_cannot_mend_stops_the_run(tmp_path):
    with fault_server({}) as (url, _):
        async def bad():
            c = Client(url, "not-served")
            try:
                await c.complete({"messages": [{"role": "user", "content": "x"}]}, {})
            finally:
                await c.aclose()
        with pytest.raises(FatalAPIError, match="HTTP 404: The model `not-served` does not exist"):
            asyncio.run(bad())


def test_instruct_records_the_fields_and_a_summary_from_a_second_request(tmp_path):
    out = tmp_path / "s.jsonl"
    with fault_server({}) as (url, faults):
        s = run(Config(llm=url, model=MODEL, count=6, out=str(out), instruct=True, summaries=True, progress=False))
    assert s.kept == 6 and faults.stats["ok"] == 12  # a story and a summary each
    for r in read_jsonl(out):
        ins, plan = r["instruct"], plan_for(0, r["index"])
        assert ins["words"] == plan.words() and ins["features"] == list(plan.features)
        assert ins["sentence"] in r["story"] and ins["summary"] and "\n" not in ins["summary"]


def test_a_rerun_with_another_seed_is_refused_rather_than_mixed(tmp_path):
    out = tmp_path / "s.jsonl"
    with fault_server({}) as (url, _):
        assert run(Config(llm=url, model=MODEL, count=4, out=str(out), progress=False)).kept == 4
        again = run(Config(llm=url, model=MODEL, count=6, out=str(out), progress=False))
        assert (again.already_done, again.kept) == (4, 2)  # resumed: only the two new ones asked
        with pytest.raises(JournalError, match="another --seed"):
            run(Config(llm=url, model=MODEL, count=6, out=str(out), seed=1, progress=False))
    assert sorted(sum(indices(out), [])) == list(range(6))
