#!/usr/bin/env python
"""Serving speed: `tinygpt serve` (continuous batching behind the OpenAI-compatible HTTP API,
streamed as server-sent events) at several numbers of concurrent clients, against `tinygpt
generate` at batch 1, side by side in one run, on the same model and the same threads.

    python bench/bench_serve.py [--concurrency 1,8,32] [--new-tokens 128] [--threads 2] [--dtype auto]
                                [--rounds 3] [--requests 3] [--max-batch 32] [--json out.json] [--profile]

The model: the preset (default `8m`, llama2.c's stories15M shape: dim 288, 6 layers, 6 heads) at
vocabulary 32000 (15.2M parameters), random weights, saved as a run with a 32000-token BPE
tokenizer (trained on generated stories and random letter strings, so every id the random model
draws decodes to text). Every sequence starts from the start-of-story token and gets exactly
--new-tokens tokens by temperature-1 top-p 0.9 sampling, never stopping early:

- generate, batch 1 (the peer): `tinygpt.generate.generate_ids` on one sequence, `eot=None`, in a
  child process that stays up; tokens/s of wall-clock time (the decoder's set-up and the prefill
  included);
- server: `tinygpt serve --max-batch 32 --threads T --dtype D` in its own process, streaming
  `POST /v1/completions` {"prompt": "", "max_tokens": N, "temperature": 1, "top_p": 0.9,
  "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}, "seed": i}.
  1 client: --pairs requests per round, each sent right after one sequence of the peer (with a
  0.25 s pause either side, so the side that finished lets its CPU threads sleep), through the
  standard library's blocking `http.client` (a third of httpx's CPU per chunk: the client shares
  the two cores with the server, so its CPU comes out of the server's share). C > 1 clients:
  httpx `AsyncClient`, one event loop in this process, each client sending --requests requests
  one after the other. Per level: aggregate completion tokens/s (all the tokens / the time the
  server was answering), time to first token (request sent -> first chunk with text) and
  inter-token latency (between consecutive text chunks of one stream), p50 and p95, and the CPU
  time the client and the server took per second of wall time. Every stream must end with
  `data: [DONE]`, finish with "length" and report N completion tokens in its usage, or the
  benchmark fails.

This shared 2-vCPU machine's speed moves by 20% and more from one second to the next, so the 1-client
target compares each request with the peer's sequence just before it and takes the median of
those ratios; the other figures are medians of --rounds rounds (the server started, measured at
every level and stopped each round). This process never runs torch (its threads would spin
beside the server), so the model is built and the peer runs in child processes. Threads:
OMP_WAIT_POLICY=ACTIVE and GOMP_SPINCOUNT=1M (unless set; the `tinygpt` command's own settings)
for the children and the server; --threads is torch's intra-op threads in both.

Targets (exit status 1 if one fails): the aggregate tokens/s at 32 clients (when measured) is at least
8x that at 1 client; 1 client gets at least 90% of generate's batch-1 tokens/s.

--profile: where the 1-client time goes, step by step, in ms per token: decode steps of a batch-1
decoder and of a batch-32 decoder with one live row, `generate_ids`, the batcher driving one
request in-process (max batch 1 and 32), all in one child process, interleaved; then the server at
1 client with --max-batch 1 and with --max-batch 32, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_name, print_table  # noqa: E402

TOP_P = 0.9
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "ACTIVE")
SPIN_COUNT = os.environ.get("GOMP_SPINCOUNT", "1M")
QUIET_S = 0.25  # between the peer and the server: the side that has finished lets its CPU threads sleep


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="8m")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--new-tokens", type=int, default=128, help="tokens per request (and per baseline sequence)")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated numbers of concurrent clients")
    p.add_argument("--requests", type=int, default=3, help="requests each client sends per level, one after another")
    p.add_argument("--pairs", type=int, default=6,
                   help="1-client requests per round, each right after one sequence of the peer")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of baseline and server")
    p.add_argument("--repeats", type=int, default=3, help="timed baseline runs per round when no 1-client level pairs them")
    p.add_argument("--json", metavar="OUT", help="write every figure, the machine and the settings as JSON")
    p.add_argument("--profile", action="store_true", help="also break down where the 1-client time goes")
    p.add_argument("--quick", action="store_true", help="32 new tokens, 1 round, 1 request per client")
    p.add_argument("--phase", choices=["setup", "baseline", "profile"], help=argparse.SUPPRESS)  # a child's part
    p.add_argument("--run", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.quick:
        a.new_tokens, a.rounds, a.requests, a.repeats, a.pairs = 32, 1, 1, 1, 1
    return a


ARGS = parse()


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy (all processes; Linux /proc/stat), to tell
    when something else ran beside the benchmark."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def others(busy0, busy1, own: float, wall: float) -> float | None:
    """Cores that other processes kept busy over `wall` seconds, given this side's own CPU time."""
    return None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - own) / wall)


# ------------------------------------------------------------------------------------------------
# The children: they run torch (never this process)
# ------------------------------------------------------------------------------------------------

def child_setup() -> dict:
    """Builds the model (random weights) and a tokenizer and saves them as a run."""
    import random
    from pathlib import Path

    import torch

    import tinygpt
    from tinygpt import _C
    from tinygpt.data import stories
    from tinygpt.model import GPT, get_preset
    from tinygpt.precision import pick_dtype
    from tinygpt.tokenizer import Tokenizer
    from tinygpt.training import checkpoint

    torch.manual_seed(0)
    model = GPT(get_preset(ARGS.preset, vocab_size=ARGS.vocab)).eval()
    # Generated stories alone support fewer than 5,000 merges; random letter strings give the rest,
    # so the tokenizer has the model's whole vocabulary and every drawn id decodes.
    rng = random.Random(0)
    texts = [s.text for s in stories.generate(2000)]
    texts += [" ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(1000))
              for _ in range(200)]
    tok = Tokenizer.train(texts, ARGS.vocab)
    checkpoint.save(Path(ARGS.run) / "best", model, tok, {"step": 0})
    cfg = model.config
    return {"params": model.num_params(), "dim": cfg.dim, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
            "model_vocab": cfg.vocab_size, "tokenizer_vocab": tok.vocab_size, "isa": _C._cpu_isa(),
            "torch": torch.__version__, "tinygpt": tinygpt.__version__,
            "dtype": "bf16" if pick_dtype(ARGS.dtype) == torch.bfloat16 else "fp32"}


def _load():
    import torch

    from tinygpt.training.checkpoint import load_run

    torch.set_num_threads(ARGS.threads)
    model, tok = load_run(ARGS.run)
    return model.eval(), tok


def _generate(model, start: int, n: int) -> None:
    from tinygpt.generate import SamplingSettings, generate_ids

    s = SamplingSettings(max_new_tokens=n, temperature=1.0, top_p=TOP_P)
    gens = generate_ids(model, [[start]], s, eot=None, seed=1, batch_size=1, dtype=ARGS.dtype)
    assert len(gens[0].ids) == n


def child_baseline() -> None:
    """`generate_ids` at batch 1, one timed sequence for each line read from stdin: its tokens/s
    and the CPU it and the other processes used, as a JSON line. Kept running between requests:
    its CPU threads sleep when idle (GOMP_SPINCOUNT), so it does not disturb the server."""
    import torch

    model, tok = _load()
    n = ARGS.new_tokens
    _generate(model, tok.eot_token, 8)  # warm-up
    print(json.dumps({"threads": torch.get_num_threads()}), flush=True)
    for _ in sys.stdin:
        busy0, cpu0, t0 = busy_cpu_s(), time.process_time(), time.perf_counter()
        _generate(model, tok.eot_token, n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        print(json.dumps({"rate": n / wall, "cpu": cpu / wall, "other_cpu": others(busy0, busy_cpu_s(), cpu, wall)}),
              flush=True)


def child_profile() -> dict:
    """Per-token costs of the pieces under one streamed request, in-process, the pieces measured
    in interleaved rounds (medians)."""
    import torch

    from tinygpt.decode import Decoder
    from tinygpt.generate import SamplingSettings
    from tinygpt.serve.batcher import Batcher, Request

    model, tok = _load()
    n, start, B = ARGS.new_tokens, tok.eot_token, ARGS.max_batch
    settings = SamplingSettings(max_new_tokens=n, temperature=1.0, top_p=TOP_P)

    def steps(dec, active):
        def run():
            tokens = torch.zeros(dec.batch_size, dtype=torch.long)
            dec.lengths.zero_()
            dec.prefill([0], torch.tensor([[start]]))
            for _ in range(n - 1):
                dec.step(tokens, active)
        return run

    def batcher(b):
        def run():
            b.submit(Request([start], settings, seed=1, ignore_eot=True, on_token=lambda r, t, lp: None))
            while b.busy:
                b.run_step()
        return run

    one = torch.zeros(B, dtype=torch.bool)
    one[0] = True
    pieces = {"generate_b1": lambda: _generate(model, start, n),
              "decode_step_b1": steps(Decoder(model, 1, dtype=ARGS.dtype), None),
              "decode_step_bmax_1live": steps(Decoder(model, B, dtype=ARGS.dtype), one),
              "batcher_1": batcher(Batcher(model, 1, eot=tok.eot_token, dtype=ARGS.dtype)),
              "batcher_bmax": batcher(Batcher(model, B, eot=tok.eot_token, dtype=ARGS.dtype))}
    times: dict[str, list[float]] = {k: [] for k in pieces}
    busy0, cpu0, t0 = busy_cpu_s(), time.process_time(), time.perf_counter()
    for rnd in range(6):  # the first is a warm-up
        for k, fn in pieces.items():
            t = time.perf_counter()
            fn()
            if rnd:
                times[k].append(time.perf_counter() - t)
    # the decode-step rows: per step (n - 1 steps after a prefill); the others: per token made
    out = {f"{k}_s": statistics.median(v) / (n - 1 if k.startswith("decode") else n) for k, v in times.items()}
    out["other_cpu"] = others(busy0, busy_cpu_s(), time.process_time() - cpu0, time.perf_counter() - t0)
    d = Decoder(model, 1, dtype=ARGS.dtype)
    t = time.perf_counter()
    for _ in range(5):
        d.prefill([0], torch.tensor([[start]]))
    out["prefill_1_token_s"] = (time.perf_counter() - t) / 5
    return out


# ------------------------------------------------------------------------------------------------
# This process: the server, the clients, the report
# ------------------------------------------------------------------------------------------------

def child_env() -> dict:
    # as the `tinygpt` command sets them: spinning CPU threads that sleep after ~25-50 ms idle
    return {**os.environ, "OMP_WAIT_POLICY": WAIT_POLICY, "GOMP_SPINCOUNT": SPIN_COUNT}


def child(phase: str, run: str, timeout: float = 600) -> dict:
    r = subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--phase", phase, "--run", run],
                       capture_output=True, text=True, env=child_env(), cwd=tempfile.gettempdir(), timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"the {phase} phase failed: {r.stderr[-1500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


class Baseline:
    """The peer, `generate_ids` at batch 1, in a child process that stays up: `run()` times one
    sequence."""

    def __init__(self, run: str):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--phase", "baseline", "--run", run],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=tempfile.gettempdir())
        self.threads = self._read()["threads"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the baseline process exited with {self.proc.wait()}")
        return json.loads(line)

    def run(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`tinygpt serve` on a free port, as its own process."""

    def __init__(self, run: str, max_batch: int):
        import httpx

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench_serve_log_", suffix=".txt", delete=False)
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tinygpt", "serve", "--run", run, "--port", str(port), "--max-batch",
             str(max_batch), "--threads", str(ARGS.threads), "--dtype", ARGS.dtype, "--log-level", "warning"],
            env=child_env(), cwd=tempfile.gettempdir(),
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not healthy within 120 s: {self.tail()}")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - t

    def cpu_s(self) -> float | None:
        """User + system CPU seconds the server process has used (Linux)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def tail(self) -> str:
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()[-1500:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


class BrokenStream(Exception):
    pass


def request_body(n: int, seed: int) -> dict:
    return {"prompt": "", "max_tokens": n, "temperature": 1.0, "top_p": TOP_P, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}, "seed": seed}


class StreamCheck:
    """Reads one stream's lines: the time to the first text chunk, the gaps between text chunks,
    and checks that the stream is whole. The parsing is kept to substring tests, since the client
    shares the CPUs with the server: a text chunk is a `data:` line whose text is not empty (the
    JSON is compact, so an empty text reads `"text":""`); only the usage chunk is parsed."""

    def __init__(self, n: int):
        self.n, self.t0 = n, time.perf_counter()
        self.gaps: list[float] = []
        self.first = self.last = self.usage = self.finish = None
        self.chunks, self.done = 0, False

    def line(self, line: str) -> None:
        if not line.startswith("data: "):
            return  # the blank line after each event (or the rest of a line split at U+2028 in a text)
        if self.done:
            raise BrokenStream(f"data after [DONE]: {line[:200]}")
        if line.startswith("data: [DONE]"):
            self.done = True
            return
        now = time.perf_counter()
        if '"usage":{' in line:
            self.usage = json.loads(line[6:])["usage"]["completion_tokens"]
            return
        if '"error":' in line:
            raise BrokenStream(line[:300])
        if '"finish_reason":null' not in line:
            self.finish = line
        if '"text":""' not in line:
            if self.first is None:
                self.first = now
            else:
                self.gaps.append(now - self.last)
            self.last = now
            self.chunks += 1

    def result(self) -> tuple[float, list[float], int]:
        """(time to first text chunk, the gaps between text chunks, text chunks)."""
        if not self.done:
            raise BrokenStream("the stream ended without data: [DONE]")
        if self.usage != self.n:
            raise BrokenStream(f"usage says {self.usage} completion tokens, not {self.n}")
        if self.finish is None or '"finish_reason":"length"' not in self.finish:
            raise BrokenStream(f"the stream did not finish with \"length\": {str(self.finish)[:200]}")
        if not 1 <= self.chunks <= self.n + 1:
            raise BrokenStream(f"{self.chunks} text chunks for {self.n} tokens")
        return self.first - self.t0, self.gaps, self.chunks


async def stream_one(client, n: int, seed: int) -> tuple[float, list[float], int]:
    """One streamed completion through httpx (the clients of the levels above 1)."""
    check = StreamCheck(n)
    async with client.stream("POST", "/v1/completions", json=request_body(n, seed)) as r:
        if r.status_code != 200:
            raise BrokenStream(f"HTTP {r.status_code}: {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            check.line(line)
    return check.result()


def stream_one_blocking(conn, n: int, seed: int) -> tuple[float, list[float], int]:
    """One streamed completion through the standard library's blocking `http.client`, the 1-client
    level's client: it takes a third of httpx's CPU per chunk, CPU that on this small machine
    comes out of the server's share."""
    check = StreamCheck(n)
    conn.request("POST", "/v1/completions", json.dumps(request_body(n, seed)), {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise BrokenStream(f"HTTP {r.status}: {r.read()[:300]!r}")
    for line in iter(r.readline, b""):
        check.line(line.decode())
    return check.result()


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of xs, interpolated linearly between the nearest ranks."""
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def run_level(client, server: Server, clients: int, n: int, requests: int, seed0: int) -> dict:
    ttft: list[float] = []
    itl: list[float] = []
    chunks = 0

    async def worker(i: int):
        nonlocal chunks
        for k in range(requests):
            first, gaps, c = await stream_one(client, n, seed0 + i * requests + k)
            ttft.append(first)
            itl.extend(gaps)
            chunks += c

    busy0, cpu0, srv0, t0 = busy_cpu_s(), time.process_time(), server.cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    cpu, srv, busy1 = time.process_time() - cpu0, server.cpu_s(), busy_cpu_s()
    own = cpu + (0.0 if srv is None or srv0 is None else srv - srv0)
    tokens = clients * requests * n  # each stream's usage said n (checked)
    return {"clients": clients, "requests": clients * requests, "tokens": tokens, "wall_s": wall,
            "tok_s": tokens / wall, "text_chunks": chunks,
            "ttft_p50_s": pct(ttft, 0.5), "ttft_p95_s": pct(ttft, 0.95),
            "itl_p50_s": pct(itl, 0.5) if itl else None, "itl_p95_s": pct(itl, 0.95) if itl else None,
            "client_cpu": cpu / wall, "server_cpu": None if srv is None or srv0 is None else (srv - srv0) / wall,
            "other_cpu": others(busy0, busy1, own, wall)}


async def run_paired(server: Server, baseline: Baseline, n: int, requests: int, seed0: int) -> dict:
    """1 client, each request right after one baseline sequence (a quiet pause between), so the
    two see the machine in the same state; the level's tokens/s counts the server's time only."""
    ttft: list[float] = []
    itl: list[float] = []
    pairs, wall, cpu, srv_cpu, other = [], 0.0, 0.0, 0.0, 0.0
    conn = http.client.HTTPConnection(server.url.split("//", 1)[1], timeout=300)
    for k in range(requests):
        base = baseline.run()  # blocking: nothing else runs on this loop at 1 client
        await asyncio.sleep(QUIET_S)
        busy0, cpu0, srv0, t0 = busy_cpu_s(), time.process_time(), server.cpu_s(), time.perf_counter()
        first, gaps, _ = stream_one_blocking(conn, n, seed0 + k)
        dt, dcpu, dsrv = time.perf_counter() - t0, time.process_time() - cpu0, (server.cpu_s() or 0) - (srv0 or 0)
        ttft.append(first)
        itl.extend(gaps)
        wall, cpu, srv_cpu = wall + dt, cpu + dcpu, srv_cpu + dsrv
        other = max(other, others(busy0, busy_cpu_s(), dcpu + dsrv, dt) or 0.0)
        pairs.append({"baseline_tok_s": base["rate"], "baseline_other_cpu": base["other_cpu"], "server_tok_s": n / dt})
        await asyncio.sleep(QUIET_S)
    conn.close()
    return {"clients": 1, "requests": requests, "tokens": requests * n, "wall_s": wall, "tok_s": requests * n / wall,
            "text_chunks": None, "ttft_p50_s": pct(ttft, 0.5), "ttft_p95_s": pct(ttft, 0.95),
            "itl_p50_s": pct(itl, 0.5) if itl else None, "itl_p95_s": pct(itl, 0.95) if itl else None,
            "client_cpu": cpu / wall, "server_cpu": srv_cpu / wall, "other_cpu": other, "pairs": pairs}


async def measure_server(server: Server, levels: list[int], n: int, requests: int, seed0: int,
                         baseline: Baseline) -> list[dict]:
    import httpx

    top = max(levels)
    limits = httpx.Limits(max_connections=top + 8, max_keepalive_connections=top + 8)
    async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(300.0), limits=limits) as client:
        # warm-up: the connections opened, the server's first steps at every batch size run
        await run_level(client, server, top, min(n, 8), 1, 10**9)
        out = []
        for i, c in enumerate(levels):
            if c == 1:
                r = await run_paired(server, baseline, n, ARGS.pairs, seed0 + 100_000 * i)
            else:
                r = await run_level(client, server, c, n, requests, seed0 + 100_000 * i)
            print(f"  {c:>3} clients: {r['tok_s']:8,.0f} tokens/s, TTFT p50 {1e3 * r['ttft_p50_s']:.1f} ms, ITL p50 "
                  f"{1e3 * (r['itl_p50_s'] or 0):.2f} ms, client CPU {r['client_cpu']:.2f}, server CPU "
                  f"{r['server_cpu'] or 0:.2f}, other processes {r['other_cpu'] or 0:.2f}", file=sys.stderr)
            out.append(r)
        return out


def round_baseline(baseline: Baseline, levels: list[int]) -> tuple[list[float], list]:
    """The peer's runs of a round measured on their own, when no 1-client level pairs them."""
    if 1 in levels:
        return [], []
    runs = [baseline.run() for _ in range(ARGS.repeats)]
    return [r["rate"] for r in runs], [r["other_cpu"] for r in runs]


def await_levels(server: Server, levels: list[int], n: int, seed0: int, baseline: Baseline) -> list[dict]:
    return asyncio.run(measure_server(server, levels, n, ARGS.requests, seed0, baseline))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ms(x) -> str:
    return "-" if x is None else f"{1e3 * x:.1f}" if x >= 0.01 else f"{1e3 * x:.2f}"


def main() -> int:
    work = tempfile.mkdtemp(prefix="bench_serve_")
    try:
        return bench(os.path.join(work, "run"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(run: str) -> int:
    n, levels = ARGS.new_tokens, [int(c) for c in ARGS.concurrency.split(",") if c]
    if max(levels) > ARGS.max_batch:
        print(f"note: {max(levels)} clients on --max-batch {ARGS.max_batch}: some requests wait for a row",
              file=sys.stderr)
    t_all = time.perf_counter()
    info = child("setup", run)
    print(f"# serving, {ARGS.preset} preset at vocab {info['model_vocab']} ({info['params'] / 1e6:.1f}M params, "
          f"dim {info['dim']}, {info['n_layers']} layers, {info['n_heads']} heads), random weights, tokenizer "
          f"{info['tokenizer_vocab']} tokens; {n} new tokens per request from the start-of-story token, "
          f"temperature 1, top-p {TOP_P}, ignore_eos")
    print(f"# {cpu_name()}, {os.cpu_count()} cores, ISA {info['isa']}, torch {info['torch']}, tinygpt "
          f"{info['tinygpt']}; {ARGS.threads} threads (server --threads, baseline torch.set_num_threads), "
          f"OMP_WAIT_POLICY={WAIT_POLICY}; --dtype {ARGS.dtype} ({info['dtype']}); --max-batch {ARGS.max_batch}; "
          f"{ARGS.rounds} rounds of baseline then server, medians of the rounds", flush=True)

    base_rounds, base_other, server_rounds, startups, pairs = [], [], [], [], []
    baseline = Baseline(run)
    try:
        for rnd in range(ARGS.rounds):
            rates, other = round_baseline(baseline, levels)
            server = Server(run, ARGS.max_batch)
            startups.append(server.startup_s)
            try:
                server_rounds.append(await_levels(server, levels, n, 1_000_000 * (rnd + 1), baseline))
            finally:
                server.stop()
            if 1 in levels:  # the peer was measured between the 1-client requests
                got = server_rounds[-1][levels.index(1)]["pairs"]
                pairs += got
                rates, other = [p["baseline_tok_s"] for p in got], [p["baseline_other_cpu"] for p in got]
            base_rounds.append(statistics.median(rates))
            base_other += other
            print(f"round {rnd + 1}: generate batch 1 {base_rounds[-1]:,.0f} tokens/s "
                  f"(runs: {', '.join(f'{x:.0f}' for x in rates)}; other processes {max(other, default=0) or 0:.2f})",
                  file=sys.stderr)
        profile = None
        if ARGS.profile:
            profile = child("profile", run)
            print(f"profile: in-process pieces measured, other processes {profile['other_cpu'] or 0:.2f}",
                  file=sys.stderr)
            by_batch: dict[int, list[dict]] = {1: [], ARGS.max_batch: []}
            for _ in range(2):  # the two servers alternate, 1 client each
                for mb in by_batch:
                    server = Server(run, mb)
                    try:
                        by_batch[mb] += await_levels(server, [1], n, 7_000_000, baseline)
                    finally:
                        server.stop()
            for mb, rs in by_batch.items():
                profile[f"serve_maxbatch{mb}_1client"] = {k: med([r[k] for r in rs]) for k in rs[0] if k != "pairs"}
    except BrokenStream as e:
        print(f"FAIL: a broken stream: {e}")
        return 1
    finally:
        baseline.stop()

    base = statistics.median(base_rounds)
    per_level = {c: [r[i] for r in server_rounds] for i, c in enumerate(levels)}
    summary = {c: {k: med([r[k] for r in rs]) for k in rs[0] if k not in ("clients", "pairs")}
               for c, rs in per_level.items()}

    def spread(xs):
        return f"{min(xs):,.0f}-{max(xs):,.0f}" if len(xs) > 1 else "-"

    rows = [("generate_ids, batch 1 (peer)", "1", f"{base:,.0f}", spread(base_rounds), "1.00x", "-",
             f"{1e3 / base:.2f} (per token)", "-", "-")]
    for c in levels:
        s, rates = summary[c], [r["tok_s"] for r in per_level[c]]
        rows.append(("tinygpt serve, streaming", str(c), f"{s['tok_s']:,.0f}", spread(rates),
                     f"{s['tok_s'] / base:.2f}x", f"{ms(s['ttft_p50_s'])} / {ms(s['ttft_p95_s'])}",
                     f"{ms(s['itl_p50_s'])} / {ms(s['itl_p95_s'])}", f"{s['client_cpu']:.2f}",
                     "-" if s["server_cpu"] is None else f"{s['server_cpu']:.2f}"))
    print(f"\nserver start to healthy: {ms(med(startups))} ms (median); {ARGS.requests} request(s) per client per "
          f"level; the peer: " + ("one sequence before each 1-client request\n" if 1 in levels else
                                 f"{ARGS.repeats} timed runs per round\n"))
    print_table("| path | clients | tokens/s | range over rounds | vs generate batch 1 | TTFT p50 / p95 (ms) "
                "| ITL p50 / p95 (ms) | client CPU | server CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|", rows)
    print("\n(tokens/s: completion tokens of all the clients / the level's wall time; CPU: cores busy, "
          "CPU seconds per wall second)")

    targets = []
    if 1 in summary and 32 in summary:  # the scaling target is stated for 32 clients
        ratio = summary[32]["tok_s"] / summary[1]["tok_s"]
        targets.append(("32 clients >= 8x the tokens/s of 1 client", ratio >= 8, f"{ratio:.1f}x"))
    if pairs:
        ratios = sorted(p["server_tok_s"] / p["baseline_tok_s"] for p in pairs)
        share = statistics.median(ratios)
        targets.append(("1 client >= 90% of generate batch 1", share >= 0.9,
                        f"{100 * share:.0f}%, the median of {len(ratios)} requests each against the peer's sequence "
                        f"just before it (range {100 * ratios[0]:.0f}-{100 * ratios[-1]:.0f}%); medians of the "
                        f"rounds: {summary[1]['tok_s']:,.0f} vs {base:,.0f} tokens/s"))
    measured = base_other + [r["other_cpu"] for rs in server_rounds for r in rs]
    if profile:
        measured += [profile["other_cpu"]] + [v["other_cpu"] for k, v in profile.items() if k.startswith("serve_")]
    busiest = max([x for x in measured if x is not None], default=None)
    if busiest is not None and busiest > 0.2:
        print(f"\nnote: other processes kept up to {busiest:.2f} cores busy during a measurement (see stderr): "
              "the figures are disturbed; rerun on a quiet machine")
    print("\nTargets:")
    for label, ok, figure in targets:
        print(f"- {label}: {'PASS' if ok else 'FAIL'} ({figure})")

    if profile:
        p, B = profile, ARGS.max_batch
        serve1, serveB = (1 / p[f"serve_maxbatch{mb}_1client"]["tok_s"] for mb in (1, B))
        steps = [
            ("decode step, batch-1 decoder (its prefill left out)", p["decode_step_b1_s"],
             "what generate does per token, without sampling"),
            ("generate_ids, batch 1 (the peer)", p["generate_b1_s"],
             "+ sampling, the decoder's set-up and the prefill"),
            (f"decode step, batch-{B} decoder, 1 live row", p["decode_step_bmax_1live_s"],
             f"the server's step: all {B} rows computed, {B - 1} of them idle"),
            ("Batcher(max_batch=1), in-process", p["batcher_1_s"], "+ sampling and the batcher's bookkeeping"),
            (f"Batcher(max_batch={B}), in-process", p["batcher_bmax_s"], "the same on the server's batch"),
            ("tinygpt serve --max-batch 1, 1 streaming client", serve1, "+ HTTP, SSE, the event loop, the client"),
            (f"tinygpt serve --max-batch {B}, 1 streaming client", serveB, "the server as measured above"),
        ]
        print("\nWhere the 1-client time goes: ms per token (in-process rows in one child process while no "
              "server runs, interleaved, medians of 5; the two server rows alternating, medians of 2, 1 client, "
              f"{ARGS.requests} request(s) of {n} tokens each). A 1-token prefill takes {ms(p['prefill_1_token_s'])} ms.\n")
        print_table("| step | ms/token | tokens/s | what it adds |\n|---|---:|---:|---|",
                    [(name, f"{1e3 * t:.2f}", f"{1 / t:,.0f}", what) for name, t, what in steps])
    wall = time.perf_counter() - t_all
    print(f"\n(the whole benchmark took {wall:.0f} s)")

    if ARGS.json:
        res = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, ISA {info['isa']}", "settings": vars(ARGS),
               "omp_wait_policy": WAIT_POLICY, **info, "baseline_tok_s": base, "baseline_rounds": base_rounds,
               "baseline_other_cpu": base_other,
               "server": summary, "server_rounds": server_rounds, "server_startup_s": startups,
               "targets": [{"target": lbl, "pass": ok, "figure": f} for lbl, ok, f in targets],
               "profile": profile, "wall_s": wall}
        with open(ARGS.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0 if all(ok for _, ok, _ in targets) else 1


if __name__ == "__main__":
    if ARGS.phase:
        os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # before torch loads
        if ARGS.phase == "baseline":
            child_baseline()
        else:
            print(json.dumps({"setup": child_setup, "profile": child_profile}[ARGS.phase]()))
        sys.exit(0)
    sys.exit(main())
