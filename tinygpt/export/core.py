"""Exporting a trained model for other tools.

- `hf`: a Hugging Face model directory that `transformers.AutoModelForCausalLM.from_pretrained`
  loads as a `LlamaForCausalLM` (and `AutoTokenizer.from_pretrained` as a fast tokenizer that
  encodes exactly as tinygpt's). The architectures are the same (half-split rotary embeddings,
  RMSNorm in fp32, SwiGLU, grouped-query attention), so the weights are copied as they are, and
  the logits match tinygpt's to float32 rounding.
- `llama2c`: `model.bin` + `tokenizer.bin` for llama2.c's `run.c`; see `tinygpt.export.llama2c` for what
  is exact (the weights) and what is llama2.c's own (prompt encoding, BOS, stopping).

An export is written into a hidden temporary directory beside `out_dir` and renamed into place
when complete, so an interrupted export leaves nothing that looks like one.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinygpt.export import hf, llama2c
from tinygpt.fileio import building_dir
from tinygpt.model import GPT
from tinygpt.tokenizer import Tokenizer
from tinygpt.training import checkpoint

FORMATS = ("hf", "llama2c")


def export(run_or_model, out_dir, format: str = "hf", *, which: str = "best",
           tokenizer: Tokenizer | None = None, overwrite: bool = False) -> Path:
    """Exports a model into the directory `out_dir` and returns its (absolute) path.

    `run_or_model` is a training run directory (its `which` checkpoint, "best" or "latest", is
    exported; a checkpoint directory itself also works), a `(GPT, Tokenizer)` pair, or a `GPT`
    with `tokenizer=`. `format` is "hf" or "llama2c". An existing `out_dir` that is not empty is
    replaced only with `overwrite`. Raises ValueError for an unknown format or a model the format
    cannot hold, FileExistsError for an occupied `out_dir`, FileNotFoundError for a missing run.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    out_dir = Path(os.path.abspath(out_dir))  # a name to put the temporary directory beside
    _check_out_dir(out_dir, overwrite)
    model, tokenizer = _model_and_tokenizer(run_or_model, tokenizer, which)
    if model.config.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"the model's vocabulary ({model.config.vocab_size}) is smaller than its tokenizer's "
            f"({tokenizer.vocab_size})"
        )
    if format == "llama2c":
        llama2c.check(model)
    writer = hf.write if format == "hf" else llama2c.write

    with building_dir(out_dir) as tmp:
        writer(model, tokenizer, tmp)
    return out_dir


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite=True to replace it)")


def _model_and_tokenizer(run_or_model, tokenizer, which) -> tuple[GPT, Tokenizer]:
    if isinstance(run_or_model, tuple):
        if len(run_or_model) != 2 or tokenizer is not None:
            raise ValueError("pass a (model, tokenizer) pair, or a model and tokenizer=")
        model, tokenizer = run_or_model
    elif isinstance(run_or_model, GPT):
        model = run_or_model
        if tokenizer is None:
            raise ValueError("exporting a GPT needs its tokenizer: pass tokenizer=")
    elif isinstance(run_or_model, (str, os.PathLike)):
        if tokenizer is not None:
            raise ValueError("a run directory brings its own tokenizer: do not pass tokenizer=")
        return checkpoint.load_run(run_or_model, which, fused=False)
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
