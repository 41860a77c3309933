"""The training loop: AdamW with linear warmup and cosine decay, gradient accumulation and
clipping, bf16 autocast, periodic evaluation, checkpoints that survive a crash at any moment, exact
resume, and data-parallel runs under torchrun.

`train` sets a run up (`state.setup`: settings, device, data, model, optimizer), then repeats
`_train_step` (one optimizer step over `grad_accum` micro-batches), `_log_step`, and
`_maybe_evaluate` / `_maybe_save` until a limit is reached or a stop is asked for, and `_finish`es
(a last evaluation and checkpoint, the summary). Everything a step reads or moves on lives in one
`state.Run`. What the run directory holds, and the rules for writing into it, are in
`tinygpt.training.rundir`.

Determinism: batch k of step s is a pure function of (seed, s, k) (`WindowLoader`), the learning
rate of a step-limited run is a pure function of the step, and nothing else draws random numbers,
so on the CPU in fp32 a resumed run ends with exactly the weights of an uninterrupted one. Micro-
batches are numbered globally, so the data does not depend on the number of processes either.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
import time

import torch

import tinygpt.ops.cuda
from tinygpt.data.shards import sequential_windows
from tinygpt.training import checkpoint, distributed, evaluate, rundir
from tinygpt.training.config import TrainConfig
from tinygpt.training.distributed import Distributed
from tinygpt.training.state import Run, setup


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite."""


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


# ------------------------------------------------------------------------------------------------
# The schedule
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# Starting
# ------------------------------------------------------------------------------------------------

def train(config: TrainConfig | None = None, *, resume: bool = False, **settings) -> dict:
    """Trains a model; see `TrainConfig` for the settings (or pass a `TrainConfig`). With
    `resume=True`, continues the run in `out` from its last checkpoint (settings given here
    override the saved ones where `RESUMABLE` allows). Returns the run's summary (also written to
    RUN/summary.json). Raises `TrainingDiverged` if the loss becomes NaN or infinite."""
    explicit = {**(config.to_dict() if config is not None else {}), **settings}
    dist = distributed.init_distributed(str(explicit.get("device") or "auto"))
    try:
        # the run is this process's (the launch's) from before it is read until the last write
        with _out_of_memory_reported(), rundir.claimed(explicit, dist) as explicit:
            return _train(explicit, resume, dist)
    finally:
        distributed.shutdown(dist)


@contextlib.contextmanager
def _out_of_memory_reported():
    """Running out of memory (torch's CPU allocator says so with a RuntimeError) is reported as a
    MemoryError that says what to change."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and "can't allocate memory" not in str(e):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(e))
        raise MemoryError(
            "out of memory" + (f" (asked for {int(asked.group(1)):,} bytes)" if asked else f" ({e})")
            + ": use a smaller batch_size, seq_len, grad_accum or model"
        ) from e


def _train(explicit: dict, resume: bool, dist: Distributed) -> dict:
    r = setup(explicit, resume, dist)
    r.bar = _progress_bar(r)
    try:
        _announce(r)
        _start_clock(r)
        r.model.train()
        with _StopSignals() as signals:
            _loop(r, signals)
        return _finish(r)
    finally:
        r.bar.close()  # before an error's message is printed


def _progress_bar(r: Run):
    from tqdm import tqdm

    max_steps = r.shape.max_steps
    total = max_steps if max_steps is not None else round(r.cfg.time_budget)
    # By steps when the run has a step count; else a clock of the time budget.
    return tqdm(total=total, initial=r.start_step if max_steps is not None else min(total, round(r.elapsed)),
                unit=" steps", disable=not (r.cfg.progress and r.dist.main), desc="training", dynamic_ncols=True,
                bar_format=None if max_steps is not None else
                "{desc}: {percentage:3.0f}%|{bar}| {n}/{total} s [{elapsed}<{remaining}{postfix}]")


def _announce(r: Run) -> None:
    if not (r.dist.main and r.cfg.progress):
        return
    from tqdm import tqdm

    cfg, shape, device = r.cfg, r.shape, r.device
    what = f"{shape.max_steps:,} steps" if shape.max_steps is not None else f"{cfg.time_budget:.0f} s"
    tqdm.write(
        f"{'resuming at step ' + str(r.start_step) if r.resumed_from is not None else 'training'} "
        f"{r.model.num_params() / 1e6:.2f}M-parameter `{cfg.model}` model for {what}: "
        f"{shape.tokens_per_step:,} tokens per step (batch {cfg.batch_size} x {shape.seq_len} x {shape.grad_accum}), "
        f"{_dtype_name(r.dtype)} on {device}"
        + (f" x {r.dist.world} processes" if r.dist.world > 1 else "")
        + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else "")
        + ((", tinygpt's CUDA kernels" if tinygpt.ops.cuda.kernels_enabled() else
            ", torch's ops (TINYGPT_CUDA_KERNELS=1 for tinygpt's CUDA kernels)")
           if device.type == "cuda" and cfg.fused else "")
    )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _start_clock(r: Run) -> None:
    r.train_time = 0.0
    r.interval_loss, r.interval_steps, r.interval_t0 = 0.0, 0, time.perf_counter()
    r.t_origin = time.perf_counter() - r.elapsed
    r.progress = _progress(r.cfg, r.step, r.shape.max_steps, r.elapsed)


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------

def _loop(r: Run, signals) -> None:
    while True:
        r.stop_reason = _limit_reached(r)
        if r.stop_reason is not None:
            return
        stop_requested = _train_step(r, signals)
        _log_step(r)
        if stop_requested:
            r.stop_reason = "interrupted"
            return
        evaluated, saved = _maybe_evaluate(r), _maybe_save(r)
        if evaluated or saved:
            r.interval_t0 = time.perf_counter()  # tokens/s counts training time only


def _limit_reached(r: Run) -> str | None:
    """Why the run stops before its next step ("steps", "tokens", "time"), or None."""
    if r.shape.max_steps is not None and r.step >= r.shape.max_steps:
        return "steps" if r.cfg.steps is not None else "tokens"
    if r.cfg.time_budget is not None and r.elapsed >= r.cfg.time_budget:
        return "time"
    return None


def _train_step(r: Run, signals) -> bool:
    """One optimizer step; returns whether a stop was asked for (on any process)."""
    cfg, dist = r.cfg, r.dist
    t_step = time.perf_counter()
    r.lr = lr_at(cfg, r.step, r.progress)
    for g in r.optimizer.param_groups:
        g["lr"] = r.lr
    loss_sum = _accumulate_gradients(r)
    norm = torch.nn.utils.clip_grad_norm_(r.model.parameters(), cfg.grad_clip or math.inf)
    # One reduction per step: the mean loss, any stop request, and rank 0's clock (so
    # time-based schedules and stops agree on every process).
    flags = torch.tensor([loss_sum.item(), float(signals.requested),
                          (time.perf_counter() - r.t_origin) if dist.main else 0.0],
                         dtype=torch.float64, device=r.device)
    loss_val, stop_req, r.elapsed = dist.all_reduce(flags).tolist()
    loss_val /= dist.world
    r.grad_norm = float(norm)
    _check_finite(r, loss_val)
    r.optimizer.step()
    r.optimizer.zero_grad(set_to_none=True)
    r.step += 1
    r.train_time += time.perf_counter() - t_step
    r.interval_loss += loss_val
    r.interval_steps += 1
    r.progress = _progress(cfg, r.step, r.shape.max_steps, r.elapsed)
    return bool(stop_req)


def _accumulate_gradients(r: Run) -> torch.Tensor:
    """Forward and backward over this process's micro-batches of the step; their summed loss."""
    K, k_local = r.shape.grad_accum, r.shape.local_accum
    loss_sum = torch.zeros((), device=r.device)
    for m in range(k_local):
        micro = r.step * K + r.dist.rank * k_local + m
        if r.cfg.dropout:  # masks drawn from (seed, micro-batch): independent of processes and resumes
            torch.manual_seed((r.cfg.seed * 1_000_003 + micro) % 2**64)  # torch's seeds are 64-bit
        batch = r.loader.batch(micro).to(r.device, non_blocking=True)
        sync = m == k_local - 1 or r.dist.world == 1
        ctx = contextlib.nullcontext() if sync else r.train_model.no_sync()
        with ctx, evaluate.autocast_context(r.device, r.dtype):
            loss = r.train_model(batch[:, :-1], batch[:, 1:]) / k_local
        loss.backward()
        loss_sum += loss.detach()
    return loss_sum


def _check_finite(r: Run, loss_val: float) -> None:
    """Raises TrainingDiverged (the step not taken) when the loss or the gradient is not finite."""
    if math.isfinite(loss_val) and math.isfinite(r.grad_norm):
        return
    r.optimizer.zero_grad(set_to_none=True)
    r.bar.close()
    raise TrainingDiverged(
        f"training diverged at step {r.step}: loss {loss_val}, gradient norm {r.grad_norm}. Stopped; "
        f"{rundir.last_good(r.dir, r.last_saved)}. Try a lower --lr, a longer --warmup, or --grad-clip 1.0"
    )


def _log_step(r: Run) -> None:
    """Every `log_every` steps a "train" record; the progress bar every step."""
    if r.step % r.cfg.log_every == 0 and r.dist.main:
        now = time.perf_counter()
        tps = r.shape.tokens_per_step
        tok_s = r.interval_steps * tps / max(now - r.interval_t0, 1e-9)
        loss = r.interval_loss / r.interval_steps
        _log(r, {"kind": "train", "step": r.step, "tokens": r.step * tps, "loss": loss, "lr": r.lr,
                 "grad_norm": r.grad_norm, "tok_s": round(tok_s, 1), "elapsed": round(r.elapsed, 3)})
        r.bar.set_postfix_str(f"step {r.step}, loss {loss:.3f}, {tok_s:,.0f} tok/s", refresh=False)
        r.interval_loss, r.interval_steps, r.interval_t0 = 0.0, 0, now
    if r.shape.max_steps is not None:
        r.bar.update(1)
    else:
        r.bar.update(max(0, min(r.bar.total, round(r.elapsed)) - r.bar.n))


def _log(r: Run, record: dict) -> None:
    """Appends a record, unless the run has one of that kind and step already (a resume with
    nothing left to train evaluates its last step again)."""
    key = (record["kind"], record["step"])
    if key in r.logged:
        return
    with r.writing(r.dir / rundir.METRICS_FILE):
        rundir.append_metrics(r.dir, record)
    r.logged.add(key)
    r.records.append(record)


def _maybe_evaluate(r: Run) -> bool:
    if r.step % r.cfg.eval_every:
        return False
    r.last_eval = _evaluate(r)
    return True


def _maybe_save(r: Run) -> bool:
    if r.step % r.save_every:
        return False
    _save_latest(r)
    return True


# ------------------------------------------------------------------------------------------------
# Evaluating and saving
# ------------------------------------------------------------------------------------------------

def _evaluate(r: Run) -> dict:
    """The validation figures (over every process's share); rank 0 logs them, keeps the best
    weights and redraws the plot."""
    ev = _validation_loss(r)
    if r.dist.main:
        _log_eval(r, ev)
        r.baseline = None
        _keep_best(r, ev)
        _plot(r)
    r.dist.barrier()
    return ev


def _validation_loss(r: Run) -> dict:
    cfg, dist = r.cfg, r.dist
    sums = evaluate.evaluate_batches(
        r.model, sequential_windows(r.val_tokens, cfg.batch_size, r.shape.seq_len, cfg.eval_tokens,
                                    rank=dist.rank, world_size=dist.world),
        r.byte_lengths, device=r.device, dtype=r.dtype)
    t = dist.all_reduce(torch.tensor(sums, dtype=torch.float64, device=r.device)).tolist()
    return evaluate.summarize(t[0], int(t[1]), int(t[2]))


def _log_eval(r: Run, ev: dict) -> None:
    rec = {"kind": "val", "step": r.step, "tokens": r.step * r.shape.tokens_per_step, "val_loss": ev["loss"],
           "val_ppl": ev["perplexity"], "val_bpb": ev["bpb"], "elapsed": round(r.elapsed, 3)}
    if r.baseline is not None:
        rec["unigram_loss"] = r.baseline
    _log(r, rec)
    if not r.cfg.progress:
        return
    from tqdm import tqdm

    text = (f"step {r.step}: val loss {ev['loss']:.4f}, perplexity {ev['perplexity']:.2f}, "
            f"{ev['bpb']:.4f} bits per byte ({ev['tokens']:,} tokens)")
    if r.baseline is not None:
        text += f"; a unigram model scores {r.baseline:.3f}"
    tqdm.write(text)


def _keep_best(r: Run, ev: dict) -> None:
    if ev["loss"] < r.best_val:
        r.best_val = ev["loss"]
        with r.writing(r.dir / rundir.BEST):
            checkpoint.save(r.dir / rundir.BEST, r.model, r.tokenizer, {**r.checkpoint_state(), "val": ev})


def _save_latest(r: Run) -> None:
    if r.dist.main:
        with r.writing(r.dir / rundir.LATEST):
            checkpoint.save(r.dir / rundir.LATEST, r.model, r.tokenizer, r.checkpoint_state(), r.optimizer)
    r.dist.barrier()
    r.last_saved = r.step


def _plot(r: Run) -> None:
    from tinygpt.training.plot import plot_losses

    with r.writing(r.dir / rundir.PLOT_FILE):
        plot_losses(r.records, os.fspath(r.dir / rundir.PLOT_FILE), title=f"{r.dir.name}: preset {r.cfg.model}")


# ------------------------------------------------------------------------------------------------
# Finishing
# ------------------------------------------------------------------------------------------------

def _finish(r: Run) -> dict:
    """A last evaluation (unless interrupted or just done) and checkpoint; the summary, written
    to RUN/summary.json."""
    r.bar.close()
    if r.stop_reason != "interrupted" and (r.last_eval is None or r.step % r.cfg.eval_every):
        r.last_eval = _evaluate(r)
    in_sync = distributed.check_in_sync(r.model, r.dist)
    if r.step != r.last_saved:
        _save_latest(r)
    summary = _summary(r, in_sync)
    if r.dist.main:
        _plot(r)
        with r.writing(r.dir / rundir.SUMMARY_FILE):
            rundir.write_summary(r.dir, summary)
    return summary


def _summary(r: Run, in_sync: bool | None) -> dict:
    tps = r.shape.tokens_per_step
    session_tokens = (r.step - r.start_step) * tps
    return {
        "stopped": r.stop_reason, "steps": r.step, "tokens_seen": r.step * tps, "elapsed_s": round(r.elapsed, 2),
        "session_tokens": session_tokens,
        "train_tokens_per_s": round(session_tokens / max(r.train_time, 1e-9), 1),
        "params": r.model.num_params(), "model": r.cfg.model, "model_config": r.shape.model_config.to_dict(),
        "dtype": _dtype_name(r.dtype), "device": str(r.device), "world_size": r.dist.world,
        "val": r.last_eval if r.stop_reason != "interrupted" else None, "best_val_loss": r.best_val,
        "resumed_from": r.resumed_from, "ranks_in_sync": in_sync, "run": str(r.dir),
    }
