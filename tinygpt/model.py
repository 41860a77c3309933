"""A Llama-style GPT (in the spirit of nanoGPT and llama2.c): token embedding, pre-norm blocks of
causal self-attention with rotary embeddings and grouped-query heads, a SwiGLU MLP, RMSNorm, and
an output head tied to the embedding.

Each op comes from `tinygpt.ops` (the fused C++ kernels) when `model.fused` is true, or from
`tinygpt.ops.reference` (plain PyTorch) when it is false; both have the same signatures.

Saved models are a directory with `model.safetensors` (the weights) and `config.json`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch
import torch.nn as nn
import torch.nn.functional as F

import tinygpt.ops
from tinygpt.fileio import atomic_write, read_versioned_json, write_json
from tinygpt.ops import reference

FORMAT = "tinygpt-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _ops(fused: bool):
    """The op set the model calls: looked up at call time, so `model.fused` can change."""
    return tinygpt.ops if fused else reference


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

@dataclass
class GPTConfig:
    vocab_size: int = 4096
    dim: int = 288
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None  # None: n_heads. Fewer: grouped-query attention.
    hidden_dim: int | None = None  # SwiGLU width. None: int(8 * dim / 3) rounded up to multiple_of.
    multiple_of: int = 32
    max_seq_len: int = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = True

    def __post_init__(self):
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        """n_kv_heads, with None resolved to n_heads."""
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def ffn_dim(self) -> int:
        """hidden_dim, with None resolved by the Llama rule."""
        if self.hidden_dim is not None:
            return self.hidden_dim
        h = 8 * self.dim // 3
        return self.multiple_of * ((h + self.multiple_of - 1) // self.multiple_of)

    def validate(self) -> None:
        """Raises ValueError if the fields have the wrong types or do not make a model."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_KINDS[f.name]
            if value is None and kind.endswith("?"):
                continue
            if kind.startswith("int"):
                ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
                want = "a positive int" + (" or None" if kind.endswith("?") else "")
            elif kind == "float":
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and math.isfinite(value) and value > 0)
                want = "a positive number"
            else:
                ok, want = isinstance(value, bool), "true or false"
            if not ok:
                raise ValueError(f"GPTConfig.{f.name} must be {want}, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.head_dim % 2:
            raise ValueError(
                f"head_dim = dim / n_heads = {self.head_dim} must be even (rotary embeddings turn pairs)"
            )
        if self.n_heads % self.kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.kv_heads})"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "GPTConfig":
        """A config from a dict such as `to_dict()` returns (missing keys take their defaults).
        Unknown keys and wrong types raise ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"a GPT config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_FIELD_KINDS))
        if unknown:
            raise ValueError(f"unknown GPT config key(s) {unknown}; valid keys: {list(_FIELD_KINDS)}")
        d = {k: float(v) if _FIELD_KINDS[k] == "float" and type(v) is int else v for k, v in d.items()}
        return cls(**d)


_FIELD_KINDS = {
    "vocab_size": "int", "dim": "int", "n_layers": "int", "n_heads": "int", "n_kv_heads": "int?",
    "hidden_dim": "int?", "multiple_of": "int", "max_seq_len": "int", "norm_eps": "float",
    "rope_theta": "float", "tie_embeddings": "bool",
}
assert list(_FIELD_KINDS) == [f.name for f in dataclasses.fields(GPTConfig)]

# Named by parameter count at vocab 4096 with tied embeddings (`GPT(config).num_params()`); the
# llama2.c and TinyStories names count their larger vocabularies (32000, 50257), so where their
# shapes would land far from the name here, `dim` is adjusted and layers and heads are kept.
PRESETS: dict[str, GPTConfig] = {
    # llama2.c stories260K (dim 64, 8/4 heads) is 509K here: narrower, head_dim 8 kept.
    "260k": GPTConfig(dim=48, n_layers=5, n_heads=6, n_kv_heads=3, hidden_dim=96, max_seq_len=512),
    "1m": GPTConfig(dim=96, n_layers=6, n_heads=6, max_seq_len=256),
    "3m": GPTConfig(dim=192, n_layers=6, n_heads=6, max_seq_len=256),
    # llama2.c stories15M's shape (and GPTConfig's defaults): 7.2M at vocab 4096.
    "8m": GPTConfig(dim=288, n_layers=6, n_heads=6, max_seq_len=256),
    "15m": GPTConfig(dim=432, n_layers=6, n_heads=6, max_seq_len=256),
    # TinyStories-33M's shape.
    "33m": GPTConfig(dim=768, n_layers=4, n_heads=16, max_seq_len=512),
    # llama2.c stories42M (dim 512) is 27M here: wider.
    "42m": GPTConfig(dim=640, n_layers=8, n_heads=8, max_seq_len=1024),
    # llama2.c stories110M's width and heads (its 12 layers give 88M at vocab 4096): 15 layers.
    "110m": GPTConfig(dim=768, n_layers=15, n_heads=12, max_seq_len=1024),
}


def get_preset(name: str, **overrides) -> GPTConfig:
    """A copy of PRESETS[name] with `overrides` applied (checked like `GPTConfig.from_dict`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return GPTConfig.from_dict({**PRESETS[name].to_dict(), **overrides})


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x, ops):
        return ops.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * cfg.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, ops):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = ops.rope(q, cos, sin), ops.rope(k, cos, sin)
        y = ops.attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)  # down

    def forward(self, x, ops):
        return self.w2(ops.swiglu(self.w1(x), self.w3(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, ops, dropout: float = 0.0):
        h = self.attn(self.norm1(x, ops), cos, sin, ops)
        x = x + (F.dropout(h, dropout, self.training) if dropout else h)
        h = self.mlp(self.norm2(x, ops), ops)
        return x + (F.dropout(h, dropout, self.training) if dropout else h)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, *, fused: bool = True):
        super().__init__()
        config.validate()
        self.config = config
        self.fused = fused  # a plain attribute: flip it at any time
        # Dropout on the embeddings and on each residual branch while training (a training
        # setting, not part of the saved config). 0 draws no random numbers at all.
        self.dropout = 0.0
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        cos, sin = reference.rope_tables(config.max_seq_len, config.head_dim, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

        # llama2.c's init: N(0, 0.02), and the projections that write to the residual stream
        # scaled down by sqrt(2 * n_layers).
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
        for block in self.layers:
            for w in (block.attn.wo.weight, block.mlp.w2.weight):
                nn.init.normal_(w, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    def forward(self, idx, targets=None):
        """idx (B, T) token ids, T <= max_seq_len. Returns the logits (B, T, vocab_size), or, with
        `targets` (B, T) (-100 for positions to leave out), the mean cross-entropy loss."""
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence length {T} is longer than max_seq_len {self.config.max_seq_len}")
        ops = _ops(self.fused)
        # The rotary tables stay fp32 even if the model was cast to a lower precision.
        cos, sin = self.rope_cos[:T].float(), self.rope_sin[:T].float()
        x = self.tok_embeddings(idx)
        p = self.dropout if self.training else 0.0
        if p:
            x = F.dropout(x, p, True)
        for block in self.layers:
            x = block(x, cos, sin, ops, p)
        logits = self.output(self.norm(x, ops))
        if targets is None:
            return logits
        return ops.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T), ignore_index=-100)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, the tied head counted once. `non_embedding` leaves out the token
        embedding (and the output head when it is not tied)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_embeddings.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.output.weight.numel()
        return n

    def configure_optimizer(self, lr: float, weight_decay: float, betas=(0.9, 0.95)):
        """AdamW with weight decay on the matrices (embedding, linears) and none on the norm
        weights; the fused implementation where the parameters' device has it."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or dtype
            return torch.optim.AdamW(groups, lr=lr, betas=betas)

    # --------------------------------------------------------------------------------------------
    # Saving and loading
    # --------------------------------------------------------------------------------------------

    def _file_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            del tensors["output.weight"]  # the embedding, stored once
        return tensors

    def save(self, directory) -> None:
        """Writes `model.safetensors` then `config.json` into `directory` (created if needed),
        each atomically. The weights file also carries the config, so that the loader can tell
        when the two files come from different saves."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        metadata = {"format": FORMAT, "version": str(FORMAT_VERSION), "config": json.dumps(config)}
        data = safetensors.torch.save(self._file_tensors(), metadata=metadata)
        with atomic_write(directory / WEIGHTS_FILE, "wb") as f:
            f.write(data)
        write_json(directory / CONFIG_FILE, {"format": FORMAT, "version": FORMAT_VERSION, "config": config},
                   indent=2)

    @classmethod
    def load(cls, directory, *, fused: bool = True, map_location="cpu") -> "GPT":
        """A model saved by `save`. Raises FileNotFoundError if the directory or a file is
        missing, ValueError if a file is corrupt, newer, or does not match the other."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"model directory not found: {directory}")
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path}")
        config = _read_config(config_path)

        try:
            with safetensors.safe_open(os.fspath(weights_path), framework="pt", device="cpu") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except safetensors.SafetensorError as e:
            raise ValueError(f"{weights_path} is corrupt or truncated ({e})") from None
        if "config" in metadata:
            try:
                same = GPTConfig.from_dict(json.loads(metadata["config"])) == config
            except ValueError:  # includes json.JSONDecodeError
                same = False
            if not same:
                raise ValueError(
                    f"{weights_path} and {config_path} do not belong together (their configs differ)"
                )

        model = cls(config, fused=fused)
        expected = model._file_tensors()
        problems = []
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing:
            problems.append(f"missing tensors {missing}")
        if unexpected:
            problems.append(f"unexpected tensors {unexpected}")
        for name in sorted(set(expected) & set(tensors)):
            want, got = expected[name], tensors[name]
            if got.shape != want.shape:
                problems.append(f"{name} has shape {tuple(got.shape)}, the config needs {tuple(want.shape)}")
            elif not got.is_floating_point():
                problems.append(f"{name} has dtype {got.dtype}, not a floating-point type")
        if problems:
            raise ValueError(f"{weights_path} does not match {config_path}: " + "; ".join(problems))
        model.load_state_dict(tensors, strict=False)  # the tied head is the embedding
        return model.to(map_location)


def _read_config(path: Path) -> GPTConfig:
    state = read_versioned_json(path, FORMAT, FORMAT_VERSION, "tinygpt model config")
    try:
        return GPTConfig.from_dict(state.get("config"))
    except ValueError as e:
        raise ValueError(f"{path} has an invalid model config: {e}") from None
