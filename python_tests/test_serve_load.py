"""`tinygpt serve` under load and churn: 32 streaming clients at once all get complete, correct
streams; a client that goes away frees its batch row (seen in /metrics); /health says 503 until
the model is loaded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time

import httpx
import pytest
import uvicorn

from serve_helpers import SAMPLING, continuation, free_port, generate_cli, served
from tinygpt.serve.app import State, create_app
from tinygpt.serve.metrics import Metrics
from tinygpt.serve.server import ServeOptions, load_engine

C = "/v1/completions"


@pytest.fixture(scope="module")
def run(serve_run):
    return serve_run


@pytest.fixture(scope="module")
def url(run):
    with served(run, "--dtype", "fp32", "--max-batch", "32") as u:
        yield u


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


async def read_stream(client: httpx.AsyncClient, url: str, body: dict) -> tuple[str, list[str]]:
    text, events = "", []
    async with client.stream("POST", url + C, json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if line:
                events.append(line)
                if line.startswith("data: {"):
                    for c in json.loads(line[6:])["choices"]:
                        text += c["text"]
    return text, events


def test_32_concurrent_streams_are_complete_and_each_its_seed_s_story(url, run):
    want = generate_cli(run, ["Once upon a time"], 32, 1000, 60)

    async def all_streams():
        async with httpx.AsyncClient(timeout=120) as client:
            bodies = [{"prompt": "Once upon a time", "max_tokens": 60, "seed": 1000 + i, "stream": True,
                       "stream_options": {"include_usage": True}, **SAMPLING} for i in range(32)]
            return await asyncio.gather(*(read_stream(client, url, b) for b in bodies))

    results = asyncio.run(all_streams())
    for i, (text, events) in enumerate(results):
        assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
        assert text == continuation(want[i]), i
        usage = json.loads(events[-2][6:])["usage"]
        assert usage["completion_tokens"] == len(want[i]["ids"])
    assert metric(url, "tinygpt_requests_running") == 0
    # several requests shared decode steps
    rows = httpx.get(url + "/metrics").text
    assert re.search(r'tinygpt_decode_step_rows_bucket\{le="32.0"\} (\d+)', rows)
    assert metric(url, "tinygpt_decode_step_rows_sum") / metric(url, "tinygpt_decode_step_rows_count") > 2


def wait_for(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_client_that_goes_away_mid_stream_frees_its_row(url):
    # 64 choices of 120 tokens: far more than the tiny model writes before the client goes away
    body = {"prompt": "Once", "max_tokens": 120, "n": 64, "ignore_eos": True, "stream": True, "seed": 1}
    tokens_before = metric(url, "tinygpt_completion_tokens_total")
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", url + C, json=body) as r:
            lines = r.iter_lines()
            for _ in range(3):
                next(lines)
        # the connection closes here
    assert wait_for(lambda: metric(url, "tinygpt_requests_running") == 0)
    assert metric(url, "tinygpt_requests_queued") == 0
    drawn = metric(url, "tinygpt_completion_tokens_total") - tokens_before
    assert drawn < 64 * 120 / 2, drawn  # freed long before the end: the rows were not kept running


def test_a_client_that_gives_up_on_a_whole_answer_frees_its_row(url):
    body = {"prompt": "Once", "max_tokens": 120, "ignore_eos": True, "n": 64}
    tokens_before = metric(url, "tinygpt_completion_tokens_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + C, json=body, timeout=0.05)
    assert wait_for(lambda: metric(url, "tinygpt_requests_running") == 0)
    assert metric(url, "tinygpt_completion_tokens_total") - tokens_before < 64 * 120 / 2
    assert httpx.post(url + C, json={"prompt": "Once", "max_tokens": 3}).status_code == 200


def test_health_is_503_while_loading_then_200(run):
    """The app on a real uvicorn server whose model loads late, as `tinygpt serve` starts."""
    state = State(Metrics(4))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    u = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: server.started)
        r = httpx.get(u + "/health")
        assert r.status_code == 503 and r.json()["status"] == "loading" and r.headers["retry-after"] == "1"
        r = httpx.post(u + C, json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "loading"
        state.engine = load_engine(ServeOptions(run=str(run), max_batch=4, dtype="fp32"), "late", state.metrics)
        assert httpx.get(u + "/health").json() == {"status": "ok", "model": "late"}
        assert httpx.post(u + C, json={"prompt": "Once", "max_tokens": 2}).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if state.engine is not None:
            state.engine.close()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the server's CPU time from /proc")
def test_an_idle_server_leaves_the_cpus_alone(run):
    # the command's own thread settings: its CPU threads spin while it decodes, then sleep
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    with served(run, "--dtype", "fp32", "--threads", "2", env=env, with_process=True) as (u, proc):
        r = httpx.post(u + C, json={"prompt": "Once", "max_tokens": 32, "ignore_eos": True}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 32
        time.sleep(0.5)
        busy0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(1.5)
        busy = (_cpu_seconds(proc.pid) - busy0) / (time.monotonic() - t0)
    assert busy < 0.2, f"the idle server kept {busy:.2f} cores busy"
