#!/usr/bin/env python
"""Story generation from an LLM (`tinygpt stories --llm`, through `tinygpt.llmstories.pipeline`):
how fast the pipeline itself goes, and how fast `tinygpt serve` feeds it.

    python bench/bench_llm_stories.py [--requests 3000] [--concurrency 64] [--stories 96] [--levels 1,8,32]

1. Against a zero-latency OpenAI-style server (python_tests/llm_fault_server.py with no faults,
   its own process: a story made from the request's words, answered at once), --requests stories
   through the whole pipeline (plan, prompt, request, checks, MinHash dedup, the journal write) at
   --concurrency: requests/s and this process's CPU per request. The peer is the server: the
   pipeline must outrun it (target >= 300 requests/s on this machine), so it is never the
   bottleneck.
2. Against `tinygpt serve` on a small story model trained here for a few seconds on built-in
   stories (completions API, each prompt the start of a story, --no-word-check since so small a
   model ignores the words): stories/s and completion tokens/s at each of --levels concurrent
   requests, --stories stories per level.

The machine (CPU model, ISA) and the settings are printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import cpu_name, print_table  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "1M")
SERVER = os.path.join(HERE, "..", "python_tests", "llm_fault_server.py")
STORY_START = {"completion": "", "story_start": "Once upon a time, there was a {adjective} {noun}."}


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000, help="stories asked of the zero-latency server")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight against it")
    p.add_argument("--stories", type=int, default=96, help="stories per level against tinygpt serve")
    p.add_argument("--levels", default="1,8,32", help="concurrency levels against tinygpt serve")
    p.add_argument("--max-tokens", type=int, default=120, help="tokens per story from tinygpt serve")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", metavar="OUT")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], health: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(health, proc)
    except BaseException:
        proc.kill()
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pipeline(url: str, model: str, count: int, concurrency: int, work: str, **extra) -> dict:
    """One pipeline run: wall time, CPU time of this process, the summary."""
    from tinygpt.llmstories.pipeline import Config, run

    out = os.path.join(work, f"out-{time.monotonic_ns()}.jsonl")
    cpu0, t0 = time.process_time(), time.perf_counter()
    s = run(Config(llm=url, model=model, count=count, out=out, concurrency=concurrency, progress=False, **extra))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "kept": s.kept, "rejected": dict(s.rejected), "retries": s.retries,
            "completion_tokens": s.completion_tokens, "prompt_tokens": s.prompt_tokens, "decided": s.decided}


def bench_zero_latency(a, work: str) -> dict:
    port = free_port()
    proc = start([sys.executable, SERVER, "--port", str(port)], f"http://127.0.0.1:{port}/v1/models")
    try:
        url = f"http://127.0.0.1:{port}/v1"
        pipeline(url, "story-llm", 200, a.concurrency, work)  # warm-up: connections, imports
        r = pipeline(url, "story-llm", a.requests, a.concurrency, work)
    finally:
        stop(proc)
    r["requests_s"] = a.requests / r["wall_s"]
    r["cpu_ms_per_request"] = 1e3 * r["cpu_s"] / a.requests
    return r


def train_story_model(work: str) -> str:
    from tinygpt.data import stories
    from tinygpt.data.prepare import prepare
    from tinygpt.training.loop import train

    stories.write_txt(os.path.join(work, "stories.txt"), 3000, 11)
    prepare([os.path.join(work, "stories.txt")], os.path.join(work, "shards"), vocab_size=512, val_fraction=0.05,
            progress=False)
    run = os.path.join(work, "story-model")
    train(data=os.path.join(work, "shards"), out=run, model="260k",
          model_overrides={"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "hidden_dim": 128,
                           "max_seq_len": 256},
          batch_size=16, seq_len=128, steps=300, lr=3e-3, warmup=20, eval_every=10_000, eval_tokens=4096,
          log_every=100, dtype="fp32", device="cpu", progress=False)
    return run


def bench_serve(a, work: str, run: str, levels: list[int]) -> list[dict]:
    port = free_port()
    templates = os.path.join(work, "story_model.json")
    with open(templates, "w") as f:
        json.dump(STORY_START, f)
    proc = start([sys.executable, "-m", "tinygpt", "serve", "--run", run, "--port", str(port), "--max-batch",
                  str(max(levels)), "--threads", str(a.threads), "--dtype", "fp32", "--log-level", "warning"],
                 f"http://127.0.0.1:{port}/health")
    out = []
    try:
        url = f"http://127.0.0.1:{port}/v1"
        extra = dict(api="completions", templates=templates, require_words=False, max_tokens=a.max_tokens,
                     temperature=0.9)
        from tinygpt.llmstories.checks import Bounds

        extra["bounds"] = Bounds(3, 1000)
        pipeline(url, "story-model", 8, 8, work, **extra)  # warm-up
        for c in levels:
            r = pipeline(url, "story-model", a.stories, c, work, **extra)
            r.update(concurrency=c, stories_s=r["decided"] / r["wall_s"],
                     tokens_s=r["completion_tokens"] / r["wall_s"],
                     tokens_per_story=r["completion_tokens"] / max(r["decided"], 1))
            print(f"  tinygpt serve, concurrency {c}: {r['stories_s']:.1f} stories/s", file=sys.stderr)
            out.append(r)
    finally:
        stop(proc)
    return out


def main() -> int:
    a = parse()
    import torch

    from tinygpt import _C

    torch.set_num_threads(a.threads)
    levels = [int(x) for x in a.levels.split(",") if x]
    print(f"# {cpu_name()}, {os.cpu_count()} cores, ISA {_C._cpu_isa()}, torch {torch.__version__}; "
          f"tinygpt serve --threads {a.threads}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    with tempfile.TemporaryDirectory(prefix="bench_llm_stories_") as work:
        zero = bench_zero_latency(a, work)
        print(f"\n## The pipeline against a zero-latency server ({a.requests} stories, concurrency "
              f"{a.concurrency})\n")
        ok = zero["requests_s"] >= 300
        print_table("| requests/s | client CPU per request (ms) | kept | rejected | target >= 300 requests/s |\n"
                    "|---:|---:|---:|---:|---|",
                    [(f"{zero['requests_s']:,.0f}", f"{zero['cpu_ms_per_request']:.2f}", f"{zero['kept']:,}",
                      f"{sum(zero['rejected'].values()):,}", "PASS" if ok else "FAIL")])
        run = train_story_model(work)
        serve = bench_serve(a, work, run, levels)
    print(f"\n## Against tinygpt serve (a 2-layer dim-64 story model, {a.stories} stories per level, up to "
          f"{a.max_tokens} tokens each)\n")
    print_table("| concurrency | stories/s | completion tokens/s | tokens per story | kept | rejected |\n"
                "|---:|---:|---:|---:|---:|---:|",
                [(str(r["concurrency"]), f"{r['stories_s']:.1f}", f"{r['tokens_s']:,.0f}",
                  f"{r['tokens_per_story']:.0f}", str(r["kept"]), str(sum(r["rejected"].values()))) for r in serve])
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": cpu_name(), "zero_latency": zero, "serve": serve, "settings": vars(a)}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
