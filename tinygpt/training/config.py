"""A run's settings: `TrainConfig` (every knob, checked), durations, settings files, and how the
settings of a run are put together (defaults < the saved run < explicit arguments)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt.model import PRESETS


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
        self._validate_counts()
        self._validate_numbers()
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def _validate_counts(self) -> None:
        for name in ("batch_size", "warmup", "eval_every", "eval_tokens", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"{name} must be a{' non-negative' if name == 'warmup' else ' positive'} "
                                 f"integer, got {v!r}")
        for name in ("steps", "tokens", "seq_len", "grad_accum", "save_every", "threads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    def _validate_numbers(self) -> None:
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Settings that may change when a run is resumed; the others define the run.
RESUMABLE = {"data", "out", "steps", "tokens", "time_budget", "eval_every", "eval_tokens", "save_every",
             "log_every", "device", "compile", "threads", "progress"}
FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


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
        if key not in FIELDS:
            raise ValueError(f"{path}: unknown setting {k!r}; valid settings: {', '.join(sorted(FIELDS))}")
        out[key] = parse_duration(v) if key == "time_budget" and v is not None else v
    return out


def check_names(settings: dict) -> None:
    """Raises TypeError for a setting `TrainConfig` does not have."""
    unknown = sorted(set(settings) - FIELDS)
    if unknown:
        raise TypeError(f"unknown training setting(s) {unknown}; valid: {', '.join(sorted(FIELDS))}")


def known(settings: dict) -> dict:
    """The entries of a saved run's settings that are `TrainConfig` fields."""
    return {k: v for k, v in settings.items() if k in FIELDS}


def changed(saved: dict, explicit: dict) -> list[str]:
    """The run-defining settings (not `RESUMABLE`) that `explicit` gives other values than `saved`."""
    return sorted(k for k, v in explicit.items()
                  if k not in RESUMABLE and k in saved and v is not None and v != saved[k])


def merge_settings(explicit: dict, saved: dict | None = None) -> TrainConfig:
    """The checked `TrainConfig` of defaults < `saved` (a resumed run's settings) < `explicit`. In a
    resume an explicit None keeps the saved value, except for `RESUMABLE` settings (None: the
    default, e.g. no step limit)."""
    if saved is None:
        merged = dict(explicit)
    else:
        merged = {**saved, **{k: v for k, v in explicit.items() if v is not None or k in RESUMABLE}}
    if "time_budget" in merged and merged["time_budget"] is not None:
        merged["time_budget"] = parse_duration(merged["time_budget"])
    cfg = TrainConfig(**merged)
    cfg.validate()
    return cfg
