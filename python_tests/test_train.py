"""Training: learning, exact resume, crash safety, refusal of bad checkpoints, the NaN guard,
distributed runs, evaluation, and the command line."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from tinygpt.training import checkpoint
from tinygpt.data import stories
from tinygpt.training.evaluate import token_byte_lengths, unigram_loss
from tinygpt.data.prepare import prepare
from tinygpt.data.shards import open_shards, sequential_windows
from tinygpt.training.config import TrainConfig, load_config_file, parse_duration
from tinygpt.training.loop import TrainingDiverged, lr_at, train

# A tiny model, so that each run takes a second or two.
TINY = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "hidden_dim": 64, "max_seq_len": 64}
BASE = dict(model="260k", model_overrides=TINY, batch_size=8, seq_len=32, dtype="fp32", device="cpu",
            warmup=3, eval_every=50, eval_tokens=2048, log_every=2, progress=False)
ENV = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
CWD = tempfile.gettempdir()  # not the source tree: subprocesses must import the installed package


def _make_shards(d: Path, count: int, seed: int, **prepare_kw) -> str:
    text = d / "stories.txt"
    stories.write_txt(text, count, seed)
    prepare([str(text)], str(d / "shards"), progress=False, **prepare_kw)
    return str(d / "shards")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    return _make_shards(tmp_path_factory.mktemp("train_data"), 1500, 3, vocab_size=512, val_fraction=0.05)


@pytest.fixture(scope="module")
def other_shards(tmp_path_factory) -> str:
    """Shards made with a different tokenizer."""
    return _make_shards(tmp_path_factory.mktemp("train_data_other"), 400, 9, vocab_size=400)


def weights(run) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(os.path.join(run, "latest", "model.safetensors"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs by {(wa[k] - wb[k]).abs().max().item()}"


def cli(*args, timeout=240, env=ENV, **kw):
    return subprocess.run([sys.executable, "-m", "tinygpt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **{"cwd": CWD, **kw})


def cli_args(shards, run, steps, **extra):
    s = {**BASE, **extra}
    args = ["train", "--data", shards, "--out", run, "--steps", steps, "--model", s["model"], "--quiet"]
    for k, v in TINY.items():
        args += ["--model-set", f"{k}={v}"]
    for k in ("batch_size", "seq_len", "dtype", "device", "warmup", "eval_every", "eval_tokens", "log_every",
              "save_every", "lr", "grad_clip"):
        if k in s:
            args += ["--" + k.replace("_", "-"), s[k]]
    return args


def read_metrics(run) -> list[dict]:
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------------------------
# Learning
# ------------------------------------------------------------------------------------------------

def test_short_run_learns_well_below_unigram(shards, tmp_path):
    s = train(data=shards, out=str(tmp_path / "run"), model="1m", steps=200, batch_size=16, seq_len=128,
              lr=2e-3, warmup=20, eval_every=100, eval_tokens=8192, dtype="fp32", device="cpu", progress=False)
    recs = read_metrics(tmp_path / "run")
    unigram = next(r["unigram_loss"] for r in recs if r["kind"] == "val")
    sh = open_shards(shards)
    assert unigram == pytest.approx(unigram_loss(sh.tokens("train"), sh.tokens("val"), sh.vocab_size))
    assert s["val"]["loss"] < 0.7 * unigram, (s["val"], unigram)
    assert s["val"]["bpb"] == pytest.approx(s["val"]["loss"] * s["val"]["tokens"] / math.log(2) / s["val"]["bytes"])
    assert s["best_val_loss"] == min(r["val_loss"] for r in recs if r["kind"] == "val")
    train_losses = [r["loss"] for r in recs if r["kind"] == "train"]
    assert train_losses[-1] < train_losses[0] - 1.0
    assert (tmp_path / "run" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 200


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(data="d", out="o", lr=1e-3, warmup=10, min_lr=1e-4)
    assert lr_at(cfg, 0, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 9, 0) == pytest.approx(1e-3)
    assert lr_at(cfg, 10, 0.0) == pytest.approx(1e-3)
    assert lr_at(cfg, 50, 0.5) == pytest.approx(5.5e-4)
    assert lr_at(cfg, 99, 1.0) == pytest.approx(1e-4)
    assert TrainConfig(data="d", out="o", lr=2e-3).min_lr is None and lr_at(TrainConfig(data="d", out="o", lr=2e-3,
                                                                                         warmup=0), 5, 1) == pytest.approx(2e-4)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400),
                                          (45, 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "5x", "m"])
def test_parse_duration_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_dropout_changes_training_but_not_evaluation(shards, tmp_path):
    a = train(data=shards, out=str(tmp_path / "a"), steps=6, **BASE)
    b = train(data=shards, out=str(tmp_path / "b"), steps=6, **BASE, dropout=0.3)
    c = train(data=shards, out=str(tmp_path / "c"), steps=6, **BASE, dropout=0.3)
    assert a["val"]["loss"] != b["val"]["loss"] and b["val"] == c["val"]  # seeded masks: repeatable
    model, _ = checkpoint.load_run(tmp_path / "b", "latest")
    model.dropout = 0.3
    x = torch.randint(0, 512, (2, 16))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(x), model(x))


def test_grad_accum_is_the_same_data_as_a_bigger_batch(shards, tmp_path):
    """Micro-batches are numbered globally: 2 x 4 sequences see the same windows as 1 x 8."""
    a = train(data=shards, out=str(tmp_path / "a"), steps=6, **{**BASE, "batch_size": 4}, grad_accum=2)
    b = train(data=shards, out=str(tmp_path / "b"), steps=6, **{**BASE, "batch_size": 8})
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a["tokens_seen"] == b["tokens_seen"]
    # same data, different summation order: equal up to float rounding
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Resume
# ------------------------------------------------------------------------------------------------

class _StopAfter:
    """Stands in for the signal handler: asks the loop to stop after `n` steps."""

    def __init__(self, n):
        self.n, self.seen = n, 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def requested(self):
        self.seen += 1
        return self.seen >= self.n


@pytest.mark.parametrize("stop_at,dropout", [(1, 0.0), (7, 0.0), (10, 0.0), (19, 0.0), (7, 0.2)])
def test_interrupted_and_resumed_run_is_bit_identical(shards, tmp_path, monkeypatch, stop_at, dropout):
    T = sys.modules["tinygpt.training.loop"]

    kw = {**BASE, "grad_accum": 2, "save_every": 10, "dropout": dropout}
    train(data=shards, out=str(tmp_path / "straight"), steps=24, **kw)
    monkeypatch.setattr(T, "_StopSignals", lambda: _StopAfter(stop_at))
    s = train(data=shards, out=str(tmp_path / "cut"), steps=24, **kw)
    assert s["stopped"] == "interrupted" and s["steps"] == stop_at
    monkeypatch.undo()
    s = train(out=str(tmp_path / "cut"), resume=True)
    assert s["resumed_from"] == stop_at and s["steps"] == 24
    assert_same_weights(tmp_path / "straight", tmp_path / "cut")
    steps = [r["step"] for r in read_metrics(tmp_path / "cut") if r["kind"] == "train"]
    assert steps == sorted(set(steps)) == list(range(2, 25, 2))


def test_sigint_stops_saves_and_resumes_exactly(shards, tmp_path):
    run = str(tmp_path / "run")
    train(data=shards, out=str(tmp_path / "straight"), steps=400, **BASE)
    p = subprocess.Popen([sys.executable, "-m", "tinygpt", *map(str, cli_args(shards, run, 400))], env=ENV,
                         cwd=CWD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_step(run, 20, p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "--resume" in out
    stopped = checkpoint.read_state(Path(run) / "latest")[1]["step"]
    assert 20 <= stopped < 400
    r = cli("train", "--out", run, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(tmp_path / "straight", run)


def _wait_for_step(run, step, proc, timeout=120):
    t0 = time.time()
    path = os.path.join(run, "metrics.jsonl")
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        if os.path.isfile(path):
            with open(path) as f:
                lines = [ln for ln in f.read().splitlines() if ln.endswith("}")]
            if lines and json.loads(lines[-1])["step"] >= step:
                return
        time.sleep(0.02)
    raise AssertionError("training did not get going")


def test_sigkill_at_any_moment_resumes_from_last_checkpoint(shards, tmp_path):
    run = str(tmp_path / "run")
    train(data=shards, out=str(tmp_path / "straight"), steps=300, **{**BASE, "save_every": 7})
    p = subprocess.Popen([sys.executable, "-m", "tinygpt", *map(str, cli_args(shards, run, 300, save_every=7))],
                         env=ENV, cwd=CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(run, 30, p)
    p.kill()
    p.wait()
    s = train(out=run, resume=True)
    assert s["resumed_from"] % 7 == 0 and s["resumed_from"] >= 28
    assert_same_weights(tmp_path / "straight", run)


@pytest.mark.parametrize("where", ["mid-write", "mid-publish"])
def test_sigkill_during_checkpoint_write_keeps_the_previous_one(shards, tmp_path, where):
    """The process kills itself inside the second checkpoint save: after the model file is written
    into the temporary directory, or between the two renames that publish it."""
    run = tmp_path / "run"
    hook = {
        "mid-write": "orig = tok.Tokenizer.save\n"
                     "def save(self, path):\n"
                     "    if 'tmp' in str(path) and 'latest' in str(path) and calls.append(1) is None and len(calls) == 2:\n"
                     "        os.kill(os.getpid(), signal.SIGKILL)\n"
                     "    return orig(self, path)\n"
                     "tok.Tokenizer.save = save\n",
        "mid-publish": "orig = os.rename\n"
                       "def rename(a, b):\n"
                       "    orig(a, b)\n"
                       "    if str(b).endswith('.latest.old'):\n"
                       "        calls.append(1)\n"
                       "        if len(calls) == 1:\n"
                       "            os.kill(os.getpid(), signal.SIGKILL)\n"
                       "os.rename = rename\n",
    }[where]
    script = textwrap.dedent("""
        import os, signal, sys
        import tinygpt.tokenizer as tok
        from tinygpt.training import train
        calls = []
    """) + hook + f"train(data={shards!r}, out={str(run)!r}, steps=30, **{BASE!r}, save_every=5)\n"
    p = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120, cwd=CWD)
    assert p.returncode == -signal.SIGKILL, p.stderr
    found, state = checkpoint.read_state(run / "latest")  # verifies every file
    assert state["step"] == 5
    if where == "mid-publish":
        assert found.name == ".latest.old" and not (run / "latest").exists()
    s = train(out=str(run), resume=True)
    assert s["resumed_from"] == 5 and s["steps"] == 30
    assert not any(p.name.startswith(".latest") for p in run.iterdir())
    train(data=shards, out=str(tmp_path / "straight"), steps=30, **BASE, save_every=5)
    assert_same_weights(tmp_path / "straight", run)


# ------------------------------------------------------------------------------------------------
# Bad checkpoints and settings are refused
# ------------------------------------------------------------------------------------------------

@pytest.fixture()
def finished_run(shards, tmp_path) -> Path:
    run = tmp_path / "run"
    train(data=shards, out=str(run), steps=4, **BASE)
    return run


def _flip_byte(path: Path, offset: int = -100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,message", [
    (lambda r: _flip_byte(r / "latest" / "model.safetensors"), "corrupt: the SHA-256 of model.safetensors"),
    (lambda r: _flip_byte(r / "latest" / "trainer.safetensors"), "corrupt: the SHA-256 of trainer.safetensors"),
    (lambda r: os.truncate(r / "latest" / "trainer.safetensors", 1000), "trainer.safetensors is 1000 bytes"),
    (lambda r: (r / "latest" / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    (lambda r: (r / "latest" / "state.json").write_text("{not json"), "state.json is not a tinygpt checkpoint .unreadable JSON"),
    (lambda r: _edit_state(r, version=99), "newer tinygpt"),
    (lambda r: _edit_state(r, format="something-else"), "not a tinygpt checkpoint"),
])
def test_damaged_checkpoints_are_refused(finished_run, damage, message):
    damage(finished_run)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        train(out=str(finished_run), resume=True, steps=8)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load_run(finished_run, "latest")
    r = cli("train", "--out", finished_run, "--resume", "--steps", 8)
    assert r.returncode == 1 and re.search(message, r.stderr) and "Traceback" not in r.stderr


def _edit_state(run: Path, **changes):
    p = run / "latest" / "state.json"
    state = json.loads(p.read_text())
    state.update(changes)
    p.write_text(json.dumps(state))


def test_checkpoint_from_another_tokenizer_is_refused(finished_run, other_shards):
    with pytest.raises(checkpoint.CheckpointError, match="another tokenizer"):
        train(out=str(finished_run), resume=True, data=other_shards, steps=8)


def test_checkpoint_of_another_model_is_refused(finished_run):
    cfg = json.loads((finished_run / "run.json").read_text())
    cfg["settings"]["model_overrides"]["n_layers"] = 3
    (finished_run / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="different model"):
        train(out=str(finished_run), resume=True, steps=8)


def test_newer_run_file_is_refused(finished_run):
    cfg = json.loads((finished_run / "run.json").read_text())
    cfg["version"] = 7
    (finished_run / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(checkpoint.CheckpointError, match="newer tinygpt"):
        train(out=str(finished_run), resume=True)


def test_existing_run_is_never_overwritten(finished_run, shards):
    before = weights(finished_run)
    with pytest.raises(ValueError, match="already holds a training run"):
        train(data=shards, out=str(finished_run), steps=8, **BASE)
    with pytest.raises(ValueError, match="cannot resume .* different settings .*lr"):
        train(out=str(finished_run), resume=True, lr=0.5)
    after = weights(finished_run)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_foreign_directory_is_not_used_as_a_run(shards, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a tinygpt run directory"):
        train(data=shards, out=str(tmp_path), steps=2, **BASE)


def test_checkpoints_hold_no_pickle(finished_run):
    for p in (finished_run / "latest").iterdir():
        head = p.read_bytes()[:2]
        assert head != b"\x80\x04" and head != b"\x80\x02", p  # pickle protocol markers
        assert p.suffix in (".json", ".safetensors")


# ------------------------------------------------------------------------------------------------
# Divergence
# ------------------------------------------------------------------------------------------------

def test_nan_guard_stops_a_diverging_run_and_keeps_the_last_good_checkpoint(shards, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"diverged at step (\d+)") as e:
        train(data=shards, out=str(run), steps=200,
              **{**BASE, "save_every": 1, "eval_every": 1000, "lr": 1e5, "warmup": 0, "grad_clip": 0.0})
    diverged = int(e.value.args[0].split("step ")[1].split(":")[0])
    assert "last good checkpoint" in str(e.value)
    found, state = checkpoint.read_state(run / "latest")
    assert state["step"] == diverged  # every step before the divergent one was saved
    model, _, _ = checkpoint.load_model(found)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    r = cli(*cli_args(str(shards), str(tmp_path / "run2"), 200, save_every=1, eval_every=1000, lr=1e5,
                      grad_clip=0, warmup=0))
    assert r.returncode == 3 and "diverged" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------------
# Distributed
# ------------------------------------------------------------------------------------------------

def test_two_process_gloo_run_trains_in_sync_and_matches_one_process(shards, tmp_path):
    run = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tinygpt", *map(str, cli_args(shards, run, 12, grad_accum=2))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, cwd=CWD)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(Path(run, "summary.json").read_text())
    assert s["world_size"] == 2 and s["ranks_in_sync"] is True and s["steps"] == 12
    recs = read_metrics(run)
    assert recs[-1]["val_loss"] < math.log(512)
    # The same global batch in one process (one thread, as torchrun gives each rank).
    torch_threads = torch.get_num_threads()
    try:
        one = train(data=shards, out=str(tmp_path / "one"), steps=12, **BASE, grad_accum=2, threads=1)
    finally:
        torch.set_num_threads(torch_threads)
    assert one["tokens_seen"] == s["tokens_seen"]
    wa, wb = weights(run), weights(tmp_path / "one")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_grad_accum_must_divide_over_processes(shards, tmp_path, monkeypatch):
    D = sys.modules["tinygpt.training.distributed"]

    monkeypatch.setattr(D, "init_distributed", lambda device: D.Distributed(rank=0, local_rank=0, world=2))
    monkeypatch.setattr(D.Distributed, "barrier", lambda self: None)  # no process group in this test
    monkeypatch.setattr(D.Distributed, "all_true", lambda self, ok: ok)
    with pytest.raises(ValueError, match="multiple of it"):
        train(data=shards, out=str(tmp_path / "r"), steps=2, **BASE, grad_accum=3)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------

def test_sequential_windows_predict_every_token_once():
    tokens = np.arange(1000, dtype=np.uint16)
    batches = list(sequential_windows(tokens, 4, 64))
    targets = np.concatenate([b[:, 1:].reshape(-1).numpy() for b in batches])
    assert np.array_equal(targets, np.arange(1, 1000))
    for rank_split in (2, 3):
        got = sorted(np.concatenate([b[:, 1:].reshape(-1).numpy() for r in range(rank_split)
                                     for b in sequential_windows(tokens, 4, 64, rank=r, world_size=rank_split)]))
        assert np.array_equal(got, np.arange(1, 1000))
    capped = np.concatenate([b[:, 1:].reshape(-1).numpy() for b in sequential_windows(tokens, 4, 64, max_tokens=200)])
    assert np.array_equal(capped, np.arange(1, 201))


def test_eval_cli_on_text_counts_every_byte(finished_run, tmp_path):
    texts = [st.text for st in stories.generate(30, seed=77)]
    f = tmp_path / "held_out.txt"
    f.write_text("".join(t + "\n<|endoftext|>\n" for t in texts), encoding="utf-8")
    r = cli("eval", "--run", finished_run, "--text", f, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert res["stories"] == 30
    assert res["bpb"] == pytest.approx(res["loss"] * res["tokens"] / math.log(2) / res["bytes"])
    # the run's own data by default; its figures agree with a direct computation
    r = cli("eval", "--run", finished_run, "--which", "latest", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    model, tok = checkpoint.load_run(finished_run, "latest")
    sh = open_shards(json.loads((finished_run / "run.json").read_text())["settings"]["data"])
    val = torch.from_numpy(sh.tokens("val").astype(np.int64))
    lengths = token_byte_lengths(tok)
    assert res["tokens"] == len(val) - 1 and res["bytes"] == int(lengths[val[1:].numpy()].sum())
    with torch.no_grad():
        T = res["seq_len"]
        total = 0.0
        for i in range(0, len(val) - 1, T):
            w = val[i:i + T + 1][None]
            total += torch.nn.functional.cross_entropy(model(w[:, :-1])[0], w[0, 1:], reduction="sum").item()
    assert res["loss"] == pytest.approx(total / res["tokens"], rel=1e-5)


def test_eval_refuses_data_of_another_tokenizer(finished_run, other_shards):
    r = cli("eval", "--run", finished_run, "--data", other_shards)
    assert r.returncode == 1 and "another tokenizer" in r.stderr


# ------------------------------------------------------------------------------------------------
# Command line and settings
# ------------------------------------------------------------------------------------------------

def test_config_file_with_flags_winning(shards, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(textwrap.dedent(f"""
        data = "{shards}"
        model = "260k"
        steps = 50
        batch-size = 4
        seq_len = 16
        lr = 0.002
        dtype = "fp32"
        eval_every = 1000
        [model_overrides]
        dim = 32
        n_layers = 1
        n_heads = 2
        n_kv_heads = 2
        hidden_dim = 32
    """))
    r = cli("train", "--config", cfg, "--out", tmp_path / "run", "--steps", 3, "--quiet")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert s["steps"] == 3 and s["batch_size"] == 4 and s["seq_len"] == 16 and s["lr"] == 0.002
    assert s["model_overrides"]["n_layers"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stpes": 3}))
    with pytest.raises(ValueError, match="unknown setting 'stpes'"):
        load_config_file(bad)


@pytest.mark.parametrize("args,message", [
    (["train", "--out", "{tmp}/r"], "no training data"),
    (["train", "--data", "/nonexistent/dir", "--out", "{tmp}/r"], "no such shard directory"),
    (["train", "--data", "{shards}", "--out", "{tmp}/r", "--lr", "-1"], "lr must be a positive"),
    (["train", "--data", "{shards}", "--out", "{tmp}/r", "--time-budget", "soon"], "cannot read the duration"),
    (["train", "--data", "{shards}", "--out", "{tmp}/r", "--model-set", "dim=100"], "divisible"),
    (["train", "--data", "{shards}", "--out", "{tmp}/r", "--device", "cuda"], "no CUDA GPU"),
    (["train", "--out", "{tmp}/nothing", "--resume"], "no training data"),
    (["eval", "--run", "{tmp}/nothing"], "no run directory"),
])
def test_cli_errors_are_clear(shards, tmp_path, args, message):
    if message == "no CUDA GPU" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = cli(*[a.format(tmp=tmp_path, shards=shards) for a in args])
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_time_budget_stops_the_run(shards, tmp_path):
    t0 = time.perf_counter()
    s = train(data=shards, out=str(tmp_path / "run"), time_budget=3, **BASE)
    assert s["stopped"] == "time" and 3 <= s["elapsed_s"] < 5
    assert time.perf_counter() - t0 < 20
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert lrs[-1] < 0.25 * max(lrs)  # the cosine decays over the budget


def test_the_command_sets_spinning_openmp_threads_unless_told_otherwise():
    code = "import os, tinygpt; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    as_cli = f"import sys; sys.argv = ['/usr/bin/tinygpt']; {code}"

    def settings(script):
        return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=CWD).stdout.split()

    assert settings(as_cli) == ["ACTIVE", "1M"]  # spinning, for a bounded time
    assert settings(code) == ["None", "None"]
    env["GOMP_SPINCOUNT"] = "5M"
    assert settings(as_cli) == ["ACTIVE", "5M"]
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    assert settings(as_cli) == ["PASSIVE", "5M"]


def test_demo_runs_end_to_end(tmp_path):
    r = cli("demo", "--out", tmp_path / "demo", "--minutes", 0.15, "--stories", 600, "--samples", 1,
            "--vocab-size", 512, "--grade-samples", 1, "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "--- story 1 (prompt: 'Once upon a time') ---" in r.stdout
    story = r.stdout.split("') ---\n", 1)[1].split("\n\n[6/6] grading 60 completions")[0]
    # streamed text, then the count (a model trained for 9 s may end its story after a few tokens)
    m = re.search(r"\n      \[(\d+) tokens, [\d,]+ tokens/s\]$", story)
    assert m, story
    text = story[: m.start()]
    assert text.startswith("Once upon a time") and (len(text) > len("Once upon a time")) == (int(m.group(1)) > 0)
    assert (tmp_path / "demo" / "run" / "best" / "model.safetensors").is_file()
    assert re.search(r"names kept in \d+% of completions, [\d.]+% non-words", r.stdout), r.stdout[-2000:]
    graded = json.loads((tmp_path / "demo" / "grade" / "grade.json").read_text())
    assert len(graded["runs"][0]["completions"]) == 60
    assert (tmp_path / "demo" / "grade" / "grade.html").is_file()


def test_tinygpt_train_trains(shards, tmp_path):
    import tinygpt

    s = tinygpt.train(data=shards, out=str(tmp_path / "run"), steps=2, **BASE)
    assert s["steps"] == 2 and tinygpt.training.TrainConfig is TrainConfig
    model, tok = checkpoint.load_run(tmp_path / "run", "latest")
    assert model.config.vocab_size == tok.vocab_size == 512
    # `tinygpt generate --run .` from inside the run ("." once failed: "has an empty name")
    r = cli("generate", "--run", ".", "--max-new-tokens", "3", "--prompt", "Once", cwd=tmp_path / "run")
    assert r.returncode == 0, r.stderr
