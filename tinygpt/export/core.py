"""Exporting a trained model for other tools.

- `hf`: a Hugging Face model directory that `transformers.AutoModelForCausalLM.from_pretrained`
  loads as a `LlamaForCausalLM` (and `AutoTokenizer.from_pretrained` as a fast tokenizer that
  encodes exactly as tinygpt's). The architectures are the same (half-split rotary embeddings,
  RMSNorm in fp32, SwiGLU, grouped-query attention), so the weights are copied as they are, and
  the logits match tinygpt's to float32 rounding.
- `llama2c`: `model.bin` + `tokenizer.bin` for llama2.c's `run.c`; see `tinygpt.export.llama2c` for what
  is exact (the weights) and what is llama2.c's own (prompt encoding, BOS, stopping).

An export is written into a hidden temporary directory beside `out_dir` and renamed into place
when complete, so an interrupted export leaves nothing that looks like one. Its last file is
MARKER, which tells a later export that the directory is one of its own.

An export never replaces what it reads, nor anything it did not write: an `out_dir` that is the
source run, lies inside it or holds it (symlinks resolved) is refused, with `overwrite` or not, and
`overwrite` replaces only a previous export (a directory holding MARKER). The source run's lock
(`tinygpt.runlock`) is held while its checkpoint is read, so that a training cannot replace the
checkpoint halfway, and a run a training holds is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import torch

from tinygpt import runlock
from tinygpt.export import hf, llama2c
from tinygpt.fileio import building_dir, write_json
from tinygpt.model import GPT
from tinygpt.tokenizer import Tokenizer
from tinygpt.training import checkpoint
from tinygpt.training.rundir import RUN_FILE

FORMATS = ("hf", "llama2c")
MARKER = "tinygpt-export.json"
MARKER_FORMAT, MARKER_VERSION = "tinygpt-export", 1


def export(run_or_model, out_dir, format: str = "hf", *, which: str = "best",
           tokenizer: Tokenizer | None = None, overwrite: bool = False) -> Path:
    """Exports a model into the directory `out_dir` and returns its (absolute, resolved) path.

    `run_or_model` is a training run directory (its `which` checkpoint, "best" or "latest", is
    exported; a checkpoint directory itself also works), a `(GPT, Tokenizer)` pair, or a `GPT`
    with `tokenizer=`. `format` is "hf" or "llama2c". An existing `out_dir` that is not empty is
    replaced only when it holds a previous export and `overwrite` is given. Raises ValueError for
    an unknown format, an `out_dir` in or around the source run, or a model the format cannot hold
    (NaN or infinite weights, a tokenizer larger than the model's vocabulary); FileExistsError for
    an occupied `out_dir`; FileNotFoundError for a missing run; RunInUseError for a run another
    process holds.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    given = Path(os.path.abspath(out_dir))
    out_dir = Path(os.path.realpath(given))  # where the files really go, through any symlink
    source = None
    if isinstance(run_or_model, (str, os.PathLike)):
        if tokenizer is not None:
            raise ValueError("a run directory brings its own tokenizer: do not pass tokenizer=")
        run, found = _run_and_checkpoint(run_or_model, which)
        _check_outside_run(given, out_dir, run, found)
        _check_out_dir(out_dir, overwrite)
        model, tokenizer = _read_locked(run, found)
        source = str(found)
    else:
        model, tokenizer = _model_and_tokenizer(run_or_model, tokenizer)
        _check_out_dir(out_dir, overwrite)
    _check_exportable(model, tokenizer, format)
    writer = hf.write if format == "hf" else llama2c.write

    with building_dir(out_dir) as tmp:
        writer(model, tokenizer, tmp)
        write_json(tmp / MARKER, {"format": MARKER_FORMAT, "version": MARKER_VERSION, "export_format": format,
                                  "source": source}, indent=2)
    return out_dir


def _run_and_checkpoint(run, which: str) -> tuple[Path, Path]:
    """(the run directory a training writes into, the checkpoint directory to read). A checkpoint
    directory given as the source (RUN/best) belongs to the run that holds it."""
    run = Path(os.path.abspath(run))
    found = checkpoint.find(run, which)
    if found == run and (run.parent / RUN_FILE).is_file():
        run = run.parent
    return run, found


def _check_outside_run(given: Path, out_dir: Path, run: Path, found: Path) -> None:
    """Refuses an `out_dir` that is, is inside, or holds the run or the checkpoint it reads:
    publishing there would replace them (and whatever lies beside them)."""
    for protected, what in ((run, "the run being exported"), (found, "the checkpoint being exported")):
        real = Path(os.path.realpath(protected))
        if out_dir == real:
            relation = "is"
        elif real in out_dir.parents:
            relation = "is inside"
        elif out_dir in real.parents:
            relation = "contains"
        else:
            continue
        shown = str(given) if given == out_dir else f"{given} (it resolves to {out_dir})"
        if given != protected:
            what += f" ({protected})"
        raise ValueError(
            f"{shown} {relation} {what}: exporting there would replace it; choose an output directory "
            "outside the run (nothing was changed)"
        )


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """An occupied `out_dir` is replaced only when it is a previous export and `overwrite` says so."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not (out_dir / MARKER).is_file():
        raise FileExistsError(
            f"{out_dir} is not empty and is not a tinygpt export (it has no {MARKER}), so it is never "
            "replaced: choose another output directory"
        )
    if not overwrite:
        raise FileExistsError(f"{out_dir} holds a previous export (pass overwrite=True to replace it)")


def _read_locked(run: Path, found: Path) -> tuple[GPT, Tokenizer]:
    """The checkpoint's model and tokenizer, read under the run's lock. A run this process may not
    write (a read-only copy) cannot be locked; it is read as it is."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(runlock.locked(run, "export"))
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
        model, tokenizer, _ = checkpoint.load_model(found, fused=False)
    return model, tokenizer


def _check_exportable(model: GPT, tokenizer: Tokenizer, format: str) -> None:
    """Refuses, before anything is written, a model the export would write wrong."""
    if model.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocabulary ({model.config.vocab_size}) is smaller than its tokenizer's "
            f"({tokenizer.vocab_size}): they do not belong together"
        )
    bad = {name: int((~torch.isfinite(t)).sum()) for name, t in model.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())}
    if bad:
        detail = "; ".join(f"{name} holds {n} NaN or infinite value{'s' * (n > 1)}"
                           for name, n in list(bad.items())[:3])
        raise ValueError(
            f"the model's weights are not finite ({detail}{'; ...' * (len(bad) > 3)}): a training that "
            "diverged leaves such weights; export a checkpoint saved before it diverged"
        )
    if format == "llama2c":
        llama2c.check(model)


def _model_and_tokenizer(run_or_model, tokenizer) -> tuple[GPT, Tokenizer]:
    if isinstance(run_or_model, tuple):
        if len(run_or_model) != 2 or tokenizer is not None:
            raise ValueError("pass a (model, tokenizer) pair, or a model and tokenizer=")
        model, tokenizer = run_or_model
    elif isinstance(run_or_model, GPT):
        model = run_or_model
        if tokenizer is None:
            raise ValueError("exporting a GPT needs its tokenizer: pass tokenizer=")
    else:
        raise TypeError(
            f"run_or_model must be a run directory, a GPT or a (GPT, Tokenizer) pair, not "
            f"{type(run_or_model).__name__}"
        )
    if not isinstance(model, GPT) or not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"expected a GPT and a Tokenizer, got {type(model).__name__} and {type(tokenizer).__name__}"
        )
    return model, tokenizer
