"""A run's settings: `TrainConfig` (every knob, checked), durations, settings files, and how the
settings of a run are put together (defaults < the saved run < explicit arguments)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
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
        check_settings(self.to_dict())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The range of each integer setting. Counts stop at what an int64 holds (torch's and numpy's
# integers); sizes of a batch at a C int; threads at what a machine could use.
INT64_MAX, SIZE_MAX, MAX_THREADS = 2**63 - 1, 2**31 - 1, 4096
INTEGERS = {"seed": (0, INT64_MAX), "steps": (1, INT64_MAX), "tokens": (1, INT64_MAX), "warmup": (0, INT64_MAX),
            "batch_size": (1, SIZE_MAX), "seq_len": (1, SIZE_MAX), "grad_accum": (1, SIZE_MAX),
            "eval_every": (1, INT64_MAX), "eval_tokens": (1, INT64_MAX), "save_every": (1, INT64_MAX),
            "log_every": (1, INT64_MAX), "threads": (1, MAX_THREADS)}
_BOUND_TEXT = {INT64_MAX: "2**63-1", SIZE_MAX: "2**31-1"}
# What each real-valued setting must be (besides finite), and the test of it.
REALS = {
    "lr": ("a positive finite number", lambda v: v > 0),
    "time_budget": ("a positive finite number of seconds", lambda v: v > 0),
    "dropout": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "beta1": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "beta2": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "weight_decay": ("a finite number >= 0", lambda v: v >= 0),
    "grad_clip": ("a finite number >= 0 (0: no clipping)", lambda v: v >= 0),
}
SWITCHES = ("compile", "fused", "progress")
# Settings that may be None: not set (no limit, or a default derived from other settings).
UNSET_OK = {"steps", "tokens", "time_budget", "seq_len", "grad_accum", "min_lr", "save_every", "threads",
            "data", "out"}


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_settings(settings: dict) -> None:
    """Raises ValueError naming the first setting of `settings` whose value is of the wrong kind
    or out of its range. `TrainConfig.validate` checks every setting with it; the command line
    calls it on the flags given, to word the error in flags."""
    for name, value in settings.items():
        if value is None and name in UNSET_OK:
            continue
        if name == "time_budget" and isinstance(value, str):
            value = parse_duration(value)
        if name in INTEGERS:
            lo, hi = INTEGERS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{_BOUND_TEXT.get(hi, hi)}, got {value!r}")
        elif name in REALS:
            what, ok = REALS[name]
            if not _is_real(value) or not ok(value):
                raise ValueError(f"{name} must be {what}, got {value!r}")
        elif name == "min_lr":
            lr = settings.get("lr", TrainConfig.lr)
            if not _is_real(value) or not 0 <= value <= (lr if _is_real(lr) else math.inf):
                raise ValueError(f"min_lr must be a finite number in [0, lr], got {value!r}")
        else:
            _check_other(name, value)


def _check_other(name: str, value) -> None:
    """The settings that are not numbers."""
    if name in SWITCHES and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if name in ("data", "out") and not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path, got {value!r}")
    if name == "model" and value not in PRESETS:
        raise ValueError(f"unknown model preset {value!r}; valid presets: {', '.join(PRESETS)}")
    if name == "model_overrides" and not isinstance(value, dict):
        raise ValueError("model_overrides must be a dict of GPTConfig fields")
    if name == "dtype" and value not in ("auto", "fp32", "bf16"):
        raise ValueError(f"dtype must be auto, fp32 or bf16, got {value!r}")
    if name == "device" and not (isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value)):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")


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
    for key in ("data", "out"):  # paths as the text run.json keeps
        if isinstance(merged.get(key), os.PathLike):
            merged[key] = os.fspath(merged[key])
    cfg = TrainConfig(**merged)
    cfg.validate()
    return cfg
