"""Training checkpoints: directories that are either complete and verified, or not there at all.

A checkpoint directory holds:

- `model.safetensors` + `config.json`: the model (`GPT.save`; `GPT.load` reads the directory);
- `tokenizer.json`: the tokenizer the model was trained with;
- `trainer.safetensors`: the optimizer's moment tensors and the RNG states (no pickle);
- `state.json`, written last: the step, tokens seen, the run's settings, the size and SHA-256 of
  every other file, and the SHA-256 of its own contents (`state_sha256`), so truncation,
  corruption or an edit anywhere, the trainer state included, is caught on load.

It is written into a hidden temporary directory, every file flushed to disk, then published by
renaming: the old directory steps aside as `.NAME.old`, the new one takes its name, the old one
is deleted. At every instant either `NAME` or `.NAME.old` is a complete checkpoint, so a crash
(even SIGKILL) in the middle of a save loses only the save in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from tinygpt.fileio import atomic_write, building_dir, published_dir, read_versioned_json, recover_dir, write_json
from tinygpt.model import GPT
from tinygpt.tokenizer import Tokenizer

FORMAT = "tinygpt-checkpoint"
FORMAT_VERSION = 2  # 2: state.json covers itself (state_sha256); 1 is still read, without that check
STATE_DIGEST = "state_sha256"
STATE_FILE = "state.json"
TRAINER_FILE = "trainer.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# A run directory's two checkpoints (`find` picks one; `tinygpt.training.rundir` writes them).
LATEST, BEST = "latest", "best"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: incomplete, corrupt, from a newer tinygpt, or one that
    does not fit the run it is asked to continue."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _state_digest(manifest: dict) -> str:
    """The SHA-256 of state.json's contents but the digest itself, in one canonical JSON form, so
    that it does not depend on how the file is laid out."""
    body = {k: v for k, v in manifest.items() if k != STATE_DIGEST}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recover(path) -> None:
    """Finishes a publish that a crash interrupted and removes abandoned temporary directories
    (call it before writing into the run directory)."""
    recover_dir(path)


def resolve(path) -> Path | None:
    """The complete checkpoint directory for `path`, or None: `path` itself, or the previous one
    if a crash came between the two renames of a publish."""
    return published_dir(path, STATE_FILE)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for key, value in st.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    return tensors


def save(path, model: GPT, tokenizer: Tokenizer, state: dict,
         optimizer: torch.optim.Optimizer | None = None) -> None:
    """Writes a checkpoint to directory `path` (replacing the one there only once the new one is
    complete). `state` is JSON-serializable (step, settings, ...); the optimizer and RNG states
    go in only when `optimizer` is given (a resumable checkpoint)."""
    with building_dir(path) as tmp:
        model.save(tmp)
        tokenizer.save(tmp / TOKENIZER_FILE)
        if optimizer is not None:
            tensors = {**_optimizer_tensors(optimizer), **_rng_tensors()}
            with atomic_write(tmp / TRAINER_FILE, "wb") as f:
                f.write(safetensors.torch.save(tensors))
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, **state, "files": files}
        manifest[STATE_DIGEST] = _state_digest(json.loads(json.dumps(manifest)))  # of what a load reads
        write_json(tmp / STATE_FILE, manifest, indent=2)


def read_state(path, *, verify: bool = True) -> tuple[Path, dict]:
    """(directory, state) of the checkpoint at `path`, its files checked against the manifest.
    Raises FileNotFoundError when there is none, CheckpointError when it is unusable."""
    path = Path(path)
    found = resolve(path)
    if found is None:
        if path.is_dir() and any(path.iterdir()):
            raise CheckpointError(f"{path} is not a complete tinygpt checkpoint (no {STATE_FILE})")
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = read_versioned_json(found / STATE_FILE, FORMAT, FORMAT_VERSION, "tinygpt checkpoint", CheckpointError)
    state_path = found / STATE_FILE
    files = state.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise CheckpointError(f"{state_path} has no valid file list")
    if verify:
        _verify_state(found, state)
        for name, info in files.items():
            p = found / name
            if not p.is_file():
                raise CheckpointError(f"checkpoint {found} is incomplete: {name} is missing")
            size = p.stat().st_size
            if size != info.get("bytes"):
                raise CheckpointError(
                    f"checkpoint {found} is damaged: {name} is {size} bytes, {info.get('bytes')} expected "
                    "(truncated or overwritten)"
                )
            if _sha256(p) != info.get("sha256"):
                raise CheckpointError(f"checkpoint {found} is corrupt: the SHA-256 of {name} does not match")
    return found, state


def _verify_state(found: Path, state: dict) -> None:
    """state.json of a version-2 checkpoint must match its own SHA-256 (version 1 had none)."""
    if state["version"] >= 2 and state.get(STATE_DIGEST) != _state_digest(state):
        raise CheckpointError(
            f"checkpoint {found} is corrupt: {STATE_FILE} does not match its SHA-256 (edited or damaged), "
            "so its step and trainer state cannot be trusted"
        )


def load_model(path, *, fused: bool = True, map_location="cpu") -> tuple[GPT, Tokenizer, dict]:
    """(model, tokenizer, state) from a verified checkpoint directory."""
    found, state = read_state(path)
    tokenizer = Tokenizer.load(found / TOKENIZER_FILE)
    model = GPT.load(found, fused=fused, map_location=map_location)
    if model.config.vocab_size < tokenizer.vocab_size:
        raise CheckpointError(
            f"checkpoint {found}: the model's vocabulary ({model.config.vocab_size}) is smaller than its "
            f"tokenizer's ({tokenizer.vocab_size})"
        )
    return model, tokenizer, state


def load_trainer(found: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restores the optimizer moments and RNG states of a verified checkpoint directory."""
    path = Path(found) / TRAINER_FILE
    if not path.is_file():
        raise CheckpointError(f"{found} holds weights only (no {TRAINER_FILE}): it cannot be resumed")
    try:
        tensors = safetensors.torch.load_file(os.fspath(path))
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{path} is corrupt ({e})") from None
    current = optimizer.state_dict()
    state: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if set(state) - set(range(len(params))):
        raise CheckpointError(f"{path}: optimizer state does not match the model's parameters")
    for idx, st in state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st and st[key].shape != params[idx].shape:
                raise CheckpointError(
                    f"{path}: optimizer state {idx}.{key} has shape {tuple(st[key].shape)}, the model "
                    f"parameter has {tuple(params[idx].shape)}"
                )
    current["state"] = state
    optimizer.load_state_dict(current)
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                        key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def find(run, which: str = "best") -> Path:
    """The checkpoint directory of a run: RUN/best or RUN/latest (falling back to the other when
    it does not exist yet), or `run` itself when it is a checkpoint directory."""
    if which not in (BEST, LATEST):
        raise ValueError(f"which must be best or latest, got {which!r}")
    run = Path(os.path.abspath(run))  # "." has no name to put a temporary directory beside
    if not run.is_dir():
        raise FileNotFoundError(f"no run directory {run}")
    if resolve(run) is not None:
        return run
    for name in (which, LATEST if which == BEST else BEST):
        if resolve(run / name) is not None:
            return run / name
    raise FileNotFoundError(f"{run} holds no checkpoint yet (no {run / which})")


def load_run(run, which: str = "best", *, fused: bool = True, map_location="cpu") -> tuple[GPT, Tokenizer]:
    """(model, tokenizer) of a run's best (lowest validation loss) or latest checkpoint."""
    model, tokenizer, _ = load_model(find(run, which), fused=fused, map_location=map_location)
    return model, tokenizer
