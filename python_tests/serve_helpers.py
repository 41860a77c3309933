"""Shared by the server tests: a tiny trained run, and `tinygpt serve` on it as a real process on
127.0.0.1 at a free port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tinygpt.data import stories
from tinygpt.data.prepare import prepare
from tinygpt.training.loop import train

TINY = {"dim": 48, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "hidden_dim": 96, "max_seq_len": 128}
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
CWD = tempfile.gettempdir()  # not the source tree: the server imports the installed package
SAMPLING = dict(temperature=0.9, top_p=0.95)


def trained_run(tmp_path_factory) -> Path:
    """A run trained for a few seconds on generated stories: it writes story-like text."""
    d = tmp_path_factory.mktemp("serve_run")
    stories.write_txt(d / "stories.txt", 1500, 3)
    prepare([str(d / "stories.txt")], str(d / "shards"), vocab_size=512, val_fraction=0.05, progress=False)
    run = d / "story-model"
    train(data=str(d / "shards"), out=str(run), model="260k", model_overrides=TINY, batch_size=16, seq_len=64,
          steps=150, lr=3e-3, warmup=10, eval_every=1000, eval_tokens=2048, log_every=50, dtype="fp32",
          device="cpu", progress=False)
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_args(*args) -> list[str]:
    return [sys.executable, "-m", "tinygpt", *map(str, args)]


@contextlib.contextmanager
def served(run, *extra_flags, timeout: float = 60.0, env: dict | None = None, with_process: bool = False):
    """`tinygpt serve --run RUN` on a free port; yields its base URL once /health says 200 (and
    the process too, with `with_process`)."""
    port = free_port()
    proc = subprocess.Popen(cli_args("serve", "--run", run, "--port", port, "--log-level", "warning",
                                     *extra_flags), env=ENV if env is None else env, cwd=CWD,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout)
        yield (url, proc) if with_process else url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server at {url} was not healthy within {timeout} s")


def generate_cli(run, prompts: list[str], n: int, seed: int, max_new_tokens: int) -> list[dict]:
    """`tinygpt generate --json` samples: prompt j's sample i is entry j * n + i, seed + that."""
    r = subprocess.run(cli_args("generate", "--run", run, "--prompt", "-", "--num-samples", n, "--seed", seed,
                                "--max-new-tokens", max_new_tokens, "--temperature", SAMPLING["temperature"],
                                "--top-p", SAMPLING["top_p"], "--dtype", "fp32", "--json"),
                       input="\n".join(prompts) + "\n", capture_output=True, text=True, env=ENV, cwd=CWD, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["samples"]


def continuation(sample: dict) -> str:
    return sample["text"][len(sample["prompt"]):]
