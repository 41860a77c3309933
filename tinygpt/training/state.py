"""A training run in progress (`Run`): what it trains with, set up once by `setup` (settings,
device, data, model, optimizer, the run directory), and where it is, moved on by the loop's steps
(`tinygpt.training.loop`)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tinygpt import threads
from tinygpt.data.shards import Shards, WindowLoader, open_shards
from tinygpt.model import GPT, GPTConfig, get_preset
from tinygpt.precision import pick_dtype
from tinygpt.tokenizer import Tokenizer
from tinygpt.training import checkpoint, distributed, evaluate, rundir
from tinygpt.training.config import TrainConfig
from tinygpt.training.distributed import Distributed


@dataclass(frozen=True)
class Shape:
    """What one step is, and how many there are."""

    model_config: GPTConfig
    seq_len: int
    grad_accum: int  # micro-batches per step, over all processes
    local_accum: int  # micro-batches per step in this process
    tokens_per_step: int
    max_steps: int | None  # None: the time budget decides


@dataclass
class Run:
    """A run in progress: what it trains with (set up once) and where it is (moved on by steps)."""

    cfg: TrainConfig
    dist: Distributed
    dir: Path
    device: torch.device
    dtype: torch.dtype
    shape: Shape
    tokenizer: Tokenizer
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    model: GPT
    train_model: torch.nn.Module  # the model as the steps call it: wrapped in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    loader: WindowLoader
    byte_lengths: np.ndarray
    records: list[dict]  # metrics.jsonl, for the plot (rank 0 only)
    logged: set[tuple[str, int]]  # the (kind, step) of each record: one record each
    start_step: int
    resumed_from: int | None
    elapsed: float  # seconds of training, over all sessions (rank 0's clock)
    best_val: float
    baseline: float | None = None  # the unigram loss, reported with the first evaluation
    bar: object = None  # the progress bar
    step: int = 0
    last_saved: int = 0
    last_eval: dict | None = None
    stop_reason: str | None = None
    lr: float = 0.0  # of the last step
    grad_norm: float = 0.0  # of the last step
    progress: float = 0.0  # the share of the run done, for the schedule
    t_origin: float = 0.0  # perf_counter() when elapsed was 0
    train_time: float = 0.0  # seconds of this session spent in training steps (not evaluating or saving)
    interval_loss: float = 0.0  # summed over the steps since the last logged one
    interval_steps: int = 0
    interval_t0: float = field(default_factory=time.perf_counter)

    @property
    def save_every(self) -> int:
        return self.cfg.save_every or self.cfg.eval_every

    def writing(self, path: Path):
        """A write into the run: a full disk stops it with an error naming `path` and the last
        good checkpoint."""
        return rundir.writing(path, self.dir, self.last_saved)

    def checkpoint_state(self) -> dict:
        """What a checkpoint records of the run beside the weights."""
        return {"step": self.step, "tokens_seen": self.step * self.shape.tokens_per_step, "elapsed": self.elapsed,
                "best_val_loss": self.best_val, "tokenizer_sha256": self.tokenizer.fingerprint,
                "settings": self.cfg.to_dict(), "seq_len": self.shape.seq_len, "world_size": self.dist.world}


def setup(explicit: dict, resume: bool, dist: Distributed) -> Run:
    """The run the explicit settings ask for, new or resumed from RUN/latest, ready for its first
    step. Nothing in RUN is written before a resumed checkpoint has loaded whole; then rank 0
    writes run.json (a new run) and trims metrics.jsonl to the resumed step."""
    cfg, saved = rundir.settings(explicit, resume)
    run = Path(cfg.out)
    device = distributed.pick_device(cfg.device, dist)
    if device.type == "cpu":
        threads.configure(cfg.threads)
    dtype = pick_dtype(cfg.dtype, device)
    shards = open_shards(cfg.data)
    tokenizer = shards.tokenizer
    shape = _shape(cfg, shards, dist.world)
    train_tokens, val_tokens = shards.tokens("train"), shards.tokens("val")
    # before the model: it refuses a seq_len longer than the data
    loader = WindowLoader(train_tokens, cfg.batch_size, shape.seq_len, seed=cfg.seed)
    model, optimizer, resumed = _model_and_optimizer(cfg, shape, tokenizer, device, run if saved else None)
    start_step, elapsed, best_val = resumed or (0, 0.0, math.inf)
    dist.barrier()  # every process has read the run and its checkpoint before rank 0 writes into it
    records = []
    if dist.main:
        rundir.prepare(run)
        if not saved:
            with rundir.writing(run / rundir.RUN_FILE, run, start_step):
                rundir.write_run_file(run, cfg, shape.model_config, tokenizer.fingerprint, len(train_tokens),
                                      len(val_tokens))
        with rundir.writing(run / rundir.METRICS_FILE, run, start_step):
            records = rundir.rewrite_metrics(run, start_step)
    return Run(
        cfg=cfg, dist=dist, dir=run, device=device, dtype=dtype, shape=shape, tokenizer=tokenizer,
        train_tokens=train_tokens, val_tokens=val_tokens, model=model,
        train_model=_wrap(model, cfg, dist, device), optimizer=optimizer, loader=loader,
        byte_lengths=evaluate.token_byte_lengths(tokenizer, shape.model_config.vocab_size),
        records=records, logged={(rec.get("kind"), rec["step"]) for rec in records},
        start_step=start_step, resumed_from=start_step if resumed else None, elapsed=elapsed,
        best_val=best_val, step=start_step, last_saved=start_step,
        baseline=(evaluate.unigram_loss(train_tokens, val_tokens, shape.model_config.vocab_size)
                  if dist.main and start_step == 0 and len(val_tokens) > 1 else None),
    )


def _shape(cfg: TrainConfig, shards: Shards, world: int) -> Shape:
    model_config = get_preset(cfg.model, **{"vocab_size": shards.vocab_size, **cfg.model_overrides})
    seq_len = cfg.seq_len or min(256, model_config.max_seq_len)
    if seq_len > model_config.max_seq_len:  # only the rotary table grows
        model_config = dataclasses.replace(model_config, max_seq_len=seq_len)
    K = cfg.grad_accum or world
    if K % world:
        raise ValueError(
            f"--grad-accum {K} counts micro-batches over all {world} processes and must be a multiple of it"
        )
    tokens_per_step = cfg.batch_size * seq_len * K
    max_steps = None
    if cfg.steps is not None:
        max_steps = cfg.steps
    elif cfg.tokens is not None:
        max_steps = math.ceil(cfg.tokens / tokens_per_step)
    elif cfg.time_budget is None:  # default: one pass over the training tokens
        max_steps = max(1, len(shards.tokens("train")) // tokens_per_step)
    return Shape(model_config, seq_len, K, K // world, tokens_per_step, max_steps)


def _model_and_optimizer(cfg: TrainConfig, shape: Shape, tokenizer: Tokenizer, device: torch.device,
                         resume_from: Path | None) -> tuple[GPT, torch.optim.Optimizer, tuple | None]:
    """The weights (fresh, or from RUN/latest when `resume_from` is RUN, which must have one that
    loads), their optimizer, and (step, elapsed, best validation loss) of the checkpoint, or None."""
    found = resumed = None
    if resume_from is not None:
        found, state = rundir.resume_checkpoint(resume_from)
        rundir.check_checkpoint_tokenizer(found, state, tokenizer.fingerprint, cfg.data)
        model = GPT.load(found, fused=cfg.fused, map_location=device)
        rundir.check_checkpoint_model(found, model.config, shape.model_config)
        resumed = (int(state["step"]), float(state["elapsed"]), float(state.get("best_val_loss", math.inf)))
    else:
        torch.manual_seed(cfg.seed)  # the same initial weights on every process
        model = GPT(shape.model_config, fused=cfg.fused).to(device)
    model.dropout = cfg.dropout
    optimizer = model.configure_optimizer(cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    if found is not None:
        checkpoint.load_trainer(found, optimizer)
    return model, optimizer, resumed


def _wrap(model: GPT, cfg: TrainConfig, dist: Distributed, device: torch.device) -> torch.nn.Module:
    train_model = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    return train_model
