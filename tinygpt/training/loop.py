"""The training loop: AdamW with linear warmup and cosine decay, gradient accumulation and
clipping, bf16 autocast, periodic evaluation, checkpoints that survive a crash at any moment, exact
resume, and data-parallel runs under torchrun.

A run directory RUN holds:
  run.json       the run's settings (written once, at the start)
  latest/        the last checkpoint: model, tokenizer, optimizer and RNG states, step (see
                 `tinygpt.checkpoint`); `--resume` continues from it
  best/          the weights with the lowest validation loss so far
  metrics.jsonl  one JSON record per logged step ("train") and per evaluation ("val")
  loss.png       train and validation loss against tokens seen
  summary.json   the final figures, once the run ends

Determinism: batch k of step s is a pure function of (seed, s, k) (`WindowLoader`), the learning
rate of a step-limited run is a pure function of the step, and nothing else draws random numbers,
so on the CPU in fp32 a resumed run ends with exactly the weights of an uninterrupted one. Micro-
batches are numbered globally, so the data does not depend on the number of processes either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import tinygpt.ops.cuda
from tinygpt.training import checkpoint, evaluate
from tinygpt import threads
from tinygpt.fileio import atomic_write, read_versioned_json, write_json
from tinygpt.model import GPT, PRESETS, get_preset
from tinygpt.devices import resolve_device, wants_cuda
from tinygpt.precision import pick_dtype
from tinygpt.data.shards import WindowLoader, open_shards, sequential_windows

RUN_FORMAT = "tinygpt-run"
RUN_VERSION = 1
RUN_FILE, METRICS_FILE, SUMMARY_FILE, PLOT_FILE = "run.json", "metrics.jsonl", "summary.json", "loss.png"
LATEST, BEST = "latest", "best"


@dataclass
class TrainConfig:
    """Every knob of a run; `tinygpt train --help` describes each."""

    data: str = ""
    out: str = ""
    model: str = "1m"
    model_overrides: dict = field(default_factory=dict)
    steps: int | None = None
    tokens: int | None = None
    time_budget: float | None = None  # seconds
    batch_size: int = 32
    seq_len: int | None = None  # None: min(256, the model's max_seq_len)
    grad_accum: int | None = None  # micro-batches per step over all processes; None: one per process
    lr: float = 1e-3
    min_lr: float | None = None  # None: lr / 10
    warmup: int = 100
    weight_decay: float = 0.1
    dropout: float = 0.0
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    dtype: str = "auto"
    device: str = "auto"
    compile: bool = False
    fused: bool = True
    eval_every: int = 250
    eval_tokens: int = 1 << 18
    save_every: int | None = None  # None: eval_every
    log_every: int = 10
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def validate(self) -> None:
        if not self.data:
            raise ValueError("no training data: give --data DIR (a directory made by `tinygpt prepare`)")
        if not self.out:
            raise ValueError("no run directory: give --out RUN")
        if self.model not in PRESETS:
            raise ValueError(f"unknown model preset {self.model!r}; valid presets: {', '.join(PRESETS)}")
        if not isinstance(self.model_overrides, dict):
            raise ValueError("model_overrides must be a dict of GPTConfig fields")
        for name in ("batch_size", "warmup", "eval_every", "eval_tokens", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"{name} must be a{' non-negative' if name == 'warmup' else ' positive'} "
                                 f"integer, got {v!r}")
        for name in ("steps", "tokens", "seq_len", "grad_accum", "save_every", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.time_budget is not None and not (self.time_budget > 0 and math.isfinite(self.time_budget)):
            raise ValueError(f"time_budget must be a positive number of seconds, got {self.time_budget!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.min_lr is not None and not (0 <= self.min_lr <= self.lr):
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.weight_decay >= 0 or not self.grad_clip >= 0:
            raise ValueError("weight_decay and grad_clip must be >= 0 (grad_clip 0: no clipping)")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Settings that may change when a run is resumed; the others define the run.
RESUMABLE = {"data", "out", "steps", "tokens", "time_budget", "eval_every", "eval_tokens", "save_every",
             "log_every", "device", "compile", "threads", "progress"}
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite."""


def parse_duration(text) -> float:
    """Seconds from 90, "90s", "10m", "1.5h" or "1h30m"."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?", s)
    if not s or not m or not any(m.groups()):
        raise ValueError(f"cannot read the duration {text!r}: use e.g. 90s, 10m, 1.5h or 1h30m")
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + sec


def load_config_file(path) -> dict:
    """Settings from a .json or .toml file (keys as the flags, with - or _)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix.lower() == ".toml":
        import tomllib

        with open(path, "rb") as f:
            raw = tomllib.load(f)
    else:
        with open(path, encoding="utf-8") as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a table of settings")
    out = {}
    for k, v in raw.items():
        key = k.replace("-", "_")
        if key not in _FIELDS:
            raise ValueError(f"{path}: unknown setting {k!r}; valid settings: {', '.join(sorted(_FIELDS))}")
        out[key] = parse_duration(v) if key == "time_budget" and v is not None else v
    return out


# ------------------------------------------------------------------------------------------------
# Processes, devices, precision
# ------------------------------------------------------------------------------------------------

@dataclass
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _init_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = wants_cuda(device)
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(rank, local, world)


def _pick_device(name: str, dist: _Dist) -> torch.device:
    return resolve_device(name, local_rank=dist.local_rank if dist.world > 1 else None)


# ------------------------------------------------------------------------------------------------
# Settings: defaults < saved run < explicit arguments
# ------------------------------------------------------------------------------------------------

def _read_run_file(run: Path) -> dict:
    info = read_versioned_json(run / RUN_FILE, RUN_FORMAT, RUN_VERSION, "tinygpt run file", checkpoint.CheckpointError)
    if not isinstance(info.get("settings"), dict):
        raise checkpoint.CheckpointError(f"{run / RUN_FILE} has no settings")
    return info


def _settings(explicit: dict, resume: bool) -> tuple[TrainConfig, dict | None]:
    unknown = sorted(set(explicit) - _FIELDS)
    if unknown:
        raise TypeError(f"unknown training setting(s) {unknown}; valid: {', '.join(sorted(_FIELDS))}")
    out = explicit.get("out")
    if not out:
        raise ValueError("no run directory: give --out RUN")
    run = Path(out)
    saved = None
    if (run / RUN_FILE).is_file():
        saved = _read_run_file(run)
        if not resume:
            raise ValueError(
                f"{run} already holds a training run: pass --resume to continue it, or choose another --out "
                "(nothing was changed)"
            )
        base = {k: v for k, v in saved["settings"].items() if k in _FIELDS}
        changed = sorted(k for k, v in explicit.items()
                         if k not in RESUMABLE and k in base and v is not None and v != base[k])
        if changed:
            detail = ", ".join(f"{k}: {base[k]!r} -> {explicit[k]!r}" for k in changed)
            raise ValueError(
                f"cannot resume {run} with different settings ({detail}); only "
                f"{', '.join(sorted(RESUMABLE - {'out'}))} may change. Start a new run with another --out"
            )
        merged = {**base, **{k: v for k, v in explicit.items() if v is not None or k in RESUMABLE}}
    else:
        if run.is_dir() and any(run.iterdir()):
            raise ValueError(
                f"{run} exists and is not a tinygpt run directory (no {RUN_FILE}): choose a new or empty --out"
            )
        merged = dict(explicit)
    if "time_budget" in merged and merged["time_budget"] is not None:
        merged["time_budget"] = parse_duration(merged["time_budget"])
    cfg = TrainConfig(**merged)
    cfg.validate()
    return cfg, saved


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------

class _StopSignals:
    """SIGINT/SIGTERM ask the loop to stop after the current step (and save); a second SIGINT
    interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup over `warmup` steps, then cosine decay from lr to min_lr as `progress`
    (the share of the run done, by steps or by time) goes from its warmup value to 1."""
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, max(0.0, progress))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * p)) * (cfg.lr - min_lr)


def _progress(cfg: TrainConfig, step: int, max_steps: int | None, elapsed: float) -> float:
    parts = []
    if max_steps is not None:
        parts.append((step - cfg.warmup) / max(1, max_steps - cfg.warmup))
    if cfg.time_budget is not None:
        parts.append(elapsed / cfg.time_budget)
    return max(parts)


def _rewrite_metrics(path: Path, upto_step: int) -> list[dict]:
    """Keeps the records up to the resumed step (a killed run may have logged past its last
    checkpoint; those steps run again)."""
    kept = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if isinstance(r, dict) and r.get("step", 1 << 62) <= upto_step:
                    kept.append(r)
    with atomic_write(path) as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    return kept


def train(config: TrainConfig | None = None, *, resume: bool = False, **settings) -> dict:
    """Trains a model; see `TrainConfig` for the settings (or pass a `TrainConfig`). With
    `resume=True`, continues the run in `out` from its last checkpoint (settings given here
    override the saved ones where `RESUMABLE` allows). Returns the run's summary (also written to
    RUN/summary.json). Raises `TrainingDiverged` if the loss becomes NaN or infinite."""
    explicit = {**(config.to_dict() if config is not None else {}), **settings}
    dist = _init_distributed(str(explicit.get("device") or "auto"))
    try:
        return _train(explicit, resume, dist)
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(explicit: dict, resume: bool, dist: _Dist) -> dict:
    cfg, saved = _settings(explicit, resume)
    dist.barrier()  # every process has read the directory's state before rank 0 writes into it
    run = Path(cfg.out)
    device = _pick_device(cfg.device, dist)
    if device.type == "cpu":
        threads.configure(cfg.threads)
    dtype = pick_dtype(cfg.dtype, device)

    shards = open_shards(cfg.data)
    tokenizer = shards.tokenizer
    model_config = get_preset(cfg.model, **{"vocab_size": shards.vocab_size, **cfg.model_overrides})
    seq_len = cfg.seq_len or min(256, model_config.max_seq_len)
    if seq_len > model_config.max_seq_len:  # only the rotary table grows
        model_config = dataclasses.replace(model_config, max_seq_len=seq_len)
    K = cfg.grad_accum or dist.world
    if K % dist.world:
        raise ValueError(
            f"--grad-accum {K} counts micro-batches over all {dist.world} processes and must be a multiple of it"
        )
    k_local = K // dist.world
    tokens_per_step = cfg.batch_size * seq_len * K
    train_tokens = shards.tokens("train")
    val_tokens = shards.tokens("val")
    max_steps = None
    if cfg.steps is not None:
        max_steps = cfg.steps
    elif cfg.tokens is not None:
        max_steps = math.ceil(cfg.tokens / tokens_per_step)
    elif cfg.time_budget is None:  # default: one pass over the training tokens
        max_steps = max(1, len(train_tokens) // tokens_per_step)

    # The weights: fresh, or from the last checkpoint.
    start_step, elapsed, best_val = 0, 0.0, math.inf
    resumed_from = None
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        checkpoint.recover(run / LATEST)
        checkpoint.recover(run / BEST)
    dist.barrier()
    found = checkpoint.resolve(run / LATEST) if resume else None
    if found is not None:
        found, state = checkpoint.read_state(found)
        if state.get("tokenizer_sha256") != tokenizer.fingerprint:
            raise checkpoint.CheckpointError(
                f"the checkpoint in {found} was trained with another tokenizer "
                f"({str(state.get('tokenizer_sha256'))[:12]}) than the data in {cfg.data} "
                f"({tokenizer.fingerprint[:12]}): token ids would mean different text"
            )
        model = GPT.load(found, fused=cfg.fused, map_location=device)
        if model.config != model_config:
            raise checkpoint.CheckpointError(
                f"the checkpoint in {found} holds a different model ({model.config}) than the run's "
                f"settings make ({model_config})"
            )
        start_step = int(state["step"])
        elapsed, best_val = float(state["elapsed"]), float(state.get("best_val_loss", math.inf))
        resumed_from = start_step
    else:
        torch.manual_seed(cfg.seed)  # the same initial weights on every process
        model = GPT(model_config, fused=cfg.fused).to(device)
    model.dropout = cfg.dropout
    optimizer = model.configure_optimizer(cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    if found is not None:
        checkpoint.load_trainer(found, optimizer)

    if dist.main and saved is None:
        write_json(run / RUN_FILE, {
            "format": RUN_FORMAT, "version": RUN_VERSION, "settings": cfg.to_dict(),
            "model_config": model_config.to_dict(), "tokenizer_sha256": tokenizer.fingerprint,
            "data": {"path": os.path.abspath(cfg.data), "train_tokens": int(len(train_tokens)),
                     "val_tokens": int(len(val_tokens))},
        }, indent=2)

    train_model = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    loader = WindowLoader(train_tokens, cfg.batch_size, seq_len, seed=cfg.seed)
    byte_lengths = evaluate.token_byte_lengths(tokenizer, model_config.vocab_size)
    metrics_path = run / METRICS_FILE
    records = _rewrite_metrics(metrics_path, start_step) if dist.main else []
    save_every = cfg.save_every or cfg.eval_every

    def run_eval() -> dict:
        sums = evaluate.evaluate_batches(
            model, sequential_windows(val_tokens, cfg.batch_size, seq_len, cfg.eval_tokens,
                                      rank=dist.rank, world_size=dist.world),
            byte_lengths, device=device, dtype=dtype)
        t = dist.all_reduce(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()
        return evaluate.summarize(t[0], int(t[1]), int(t[2]))

    def state_dict(step: int) -> dict:
        return {"step": step, "tokens_seen": step * tokens_per_step, "elapsed": elapsed, "best_val_loss": best_val,
                "tokenizer_sha256": tokenizer.fingerprint, "settings": cfg.to_dict(),
                "seq_len": seq_len, "world_size": dist.world}

    def save_latest(step: int) -> None:
        if dist.main:
            checkpoint.save(run / LATEST, model, tokenizer, state_dict(step), optimizer)
        dist.barrier()

    def evaluate_and_keep_best(step: int) -> dict:
        nonlocal best_val, baseline
        ev = run_eval()
        if dist.main:
            _report_eval(cfg.progress, step, step * tokens_per_step, elapsed, ev, baseline, log)
            baseline = None
            if ev["loss"] < best_val:
                best_val = ev["loss"]
                checkpoint.save(run / BEST, model, tokenizer, {**state_dict(step), "val": ev})
            _plot(records, run, cfg)
        dist.barrier()
        return ev

    def log(record: dict) -> None:
        records.append(record)
        with open(metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    if dist.main and start_step == 0 and len(val_tokens) > 1:
        baseline = evaluate.unigram_loss(train_tokens, val_tokens, model_config.vocab_size)
    else:
        baseline = None

    from tqdm import tqdm

    bar_total = max_steps if max_steps is not None else round(cfg.time_budget)
    # By steps when the run has a step count; else a clock of the time budget.
    bar = tqdm(total=bar_total, initial=start_step if max_steps is not None else min(bar_total, round(elapsed)),
               unit=" steps", disable=not (cfg.progress and dist.main), desc="training", dynamic_ncols=True,
               bar_format=None if max_steps is not None else
               "{desc}: {percentage:3.0f}%|{bar}| {n}/{total} s [{elapsed}<{remaining}{postfix}]")
    if dist.main and cfg.progress:
        what = f"{max_steps:,} steps" if max_steps is not None else f"{cfg.time_budget:.0f} s"
        tqdm.write(
            f"{'resuming at step ' + str(start_step) if resumed_from is not None else 'training'} "
            f"{model.num_params() / 1e6:.2f}M-parameter `{cfg.model}` model for {what}: "
            f"{tokens_per_step:,} tokens per step (batch {cfg.batch_size} x {seq_len} x {K}), "
            f"{str(dtype).replace('torch.', '')} on {device}"
            + (f" x {dist.world} processes" if dist.world > 1 else "")
            + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else "")
            + ((", tinygpt's CUDA kernels" if tinygpt.ops.cuda.kernels_enabled() else
                ", torch's ops (TINYGPT_CUDA_KERNELS=1 for tinygpt's CUDA kernels)")
               if device.type == "cuda" and cfg.fused else "")
        )

    step = last_saved = start_step
    stop_reason = None
    last_eval = None
    train_time = 0.0  # seconds spent in training steps (not evaluating or saving)
    interval_loss, interval_steps, interval_t0 = 0.0, 0, time.perf_counter()
    t_origin = time.perf_counter() - elapsed
    progress = _progress(cfg, step, max_steps, elapsed)
    model.train()
    with _StopSignals() as signals:
        while True:
            if max_steps is not None and step >= max_steps:
                stop_reason = "steps" if cfg.steps is not None else "tokens"
                break
            if cfg.time_budget is not None and elapsed >= cfg.time_budget:
                stop_reason = "time"
                break
            t_step = time.perf_counter()
            lr = lr_at(cfg, step, progress)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for m in range(k_local):
                micro = step * K + dist.rank * k_local + m
                if cfg.dropout:  # masks drawn from (seed, micro-batch): independent of processes and resumes
                    torch.manual_seed(cfg.seed * 1_000_003 + micro)
                batch = loader.batch(micro).to(device, non_blocking=True)
                sync = m == k_local - 1 or dist.world == 1
                ctx = contextlib.nullcontext() if sync else train_model.no_sync()
                with ctx, evaluate.autocast_context(device, dtype):
                    loss = train_model(batch[:, :-1], batch[:, 1:]) / k_local
                loss.backward()
                loss_sum += loss.detach()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
            # One reduction per step: the mean loss, any stop request, and rank 0's clock (so
            # time-based schedules and stops agree on every process).
            flags = torch.tensor([loss_sum.item(), float(signals.requested),
                                  (time.perf_counter() - t_origin) if dist.main else 0.0],
                                 dtype=torch.float64, device=device)
            loss_val, stop_req, elapsed = dist.all_reduce(flags).tolist()
            loss_val /= dist.world
            norm_val = float(norm)
            if not (math.isfinite(loss_val) and math.isfinite(norm_val)):
                optimizer.zero_grad(set_to_none=True)
                keep = (f"the last good checkpoint (step {last_saved}) is kept in {run / LATEST}" if last_saved
                        else "no checkpoint had been written yet")
                bar.close()
                raise TrainingDiverged(
                    f"training diverged at step {step}: loss {loss_val}, gradient norm {norm_val}. Stopped; "
                    f"{keep}. Try a lower --lr, a longer --warmup, or --grad-clip 1.0"
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_time += time.perf_counter() - t_step
            interval_loss += loss_val
            interval_steps += 1
            progress = _progress(cfg, step, max_steps, elapsed)

            if step % cfg.log_every == 0 and dist.main:
                now = time.perf_counter()
                tok_s = interval_steps * tokens_per_step / max(now - interval_t0, 1e-9)
                log({"kind": "train", "step": step, "tokens": step * tokens_per_step, "loss": interval_loss / interval_steps,
                     "lr": lr, "grad_norm": norm_val, "tok_s": round(tok_s, 1), "elapsed": round(elapsed, 3)})
                bar.set_postfix_str(f"step {step}, loss {interval_loss / interval_steps:.3f}, {tok_s:,.0f} tok/s",
                                    refresh=False)
                interval_loss, interval_steps, interval_t0 = 0.0, 0, now
            if max_steps is not None:
                bar.update(1)
            else:
                bar.update(max(0, min(bar_total, round(elapsed)) - bar.n))

            if stop_req:
                stop_reason = "interrupted"
                break
            if step % cfg.eval_every == 0:
                last_eval = evaluate_and_keep_best(step)
            if step % save_every == 0:
                save_latest(step)
                last_saved = step
            if step % cfg.eval_every == 0 or step % save_every == 0:
                interval_t0 = time.perf_counter()  # tokens/s counts training time only

    bar.close()
    if stop_reason != "interrupted" and (last_eval is None or step % cfg.eval_every):
        last_eval = evaluate_and_keep_best(step)
    session_tokens = (step - start_step) * tokens_per_step
    in_sync = _check_in_sync(model, dist)
    if step != last_saved:
        save_latest(step)
    summary = {
        "stopped": stop_reason, "steps": step, "tokens_seen": step * tokens_per_step, "elapsed_s": round(elapsed, 2),
        "session_tokens": session_tokens,
        "train_tokens_per_s": round(session_tokens / max(train_time, 1e-9), 1),
        "params": model.num_params(), "model": cfg.model, "model_config": model_config.to_dict(),
        "dtype": str(dtype).replace("torch.", ""), "device": str(device), "world_size": dist.world,
        "val": last_eval if stop_reason != "interrupted" else None, "best_val_loss": best_val,
        "resumed_from": resumed_from, "ranks_in_sync": in_sync, "run": str(run),
    }
    if dist.main:
        _plot(records, run, cfg)
        write_json(run / SUMMARY_FILE, summary, indent=2)
    return summary


def _report_eval(verbose, step, tokens_seen, elapsed, ev, baseline, log) -> None:
    rec = {"kind": "val", "step": step, "tokens": tokens_seen, "val_loss": ev["loss"], "val_ppl": ev["perplexity"],
           "val_bpb": ev["bpb"], "elapsed": round(elapsed, 3)}
    if baseline is not None:
        rec["unigram_loss"] = baseline
    log(rec)
    if not verbose:
        return
    from tqdm import tqdm

    text = (f"step {step}: val loss {ev['loss']:.4f}, perplexity {ev['perplexity']:.2f}, "
            f"{ev['bpb']:.4f} bits per byte ({ev['tokens']:,} tokens)")
    if baseline is not None:
        text += f"; a unigram model scores {baseline:.3f}"
    tqdm.write(text)


def _plot(records, run: Path, cfg: TrainConfig) -> None:
    from tinygpt.training.plot import plot_losses

    plot_losses(records, os.fspath(run / PLOT_FILE), title=f"{run.name}: preset {cfg.model}")


def _check_in_sync(model: GPT, dist: _Dist) -> bool | None:
    """In a multi-process run: whether every process holds exactly rank 0's weights (it must)."""
    if dist.world == 1:
        return None
    with torch.no_grad():
        mine = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        ref = mine.clone()
        torch.distributed.broadcast(ref, src=0)
        flags = dist.all_reduce(torch.tensor([0.0 if torch.equal(mine, ref) else 1.0], device=mine.device))
    if flags.item():
        raise RuntimeError("the processes' weights differ at the end of training: the run is broken")
    return True
