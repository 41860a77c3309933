"""Exporting a trained model for other tools.

- `hf`: a Hugging Face model directory that `transformers.AutoModelForCausalLM.from_pretrained`
  loads as a `LlamaForCausalLM` (and `AutoTokenizer.from_pretrained` as a fast tokenizer that
  encodes exactly as tinygpt's). The architectures are the same (half-split rotary embeddings,
  RMSNorm in fp32, SwiGLU, grouped-query attention), so the weights are copied as they are, and
  the logits match tinygpt's to float32 rounding.
- `llama2c`: `model.bin` + `tokenizer.bin` for llama2.c's `run.c`; see `tinygpt.llama2c` for what
  is exact (the weights) and what is llama2.c's own (prompt encoding, BOS, stopping).

An export is written into a hidden temporary directory beside `out_dir` and renamed into place
when complete, so an interrupted export leaves nothing that looks like one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import safetensors.torch
import torch

from tinygpt import checkpoint, llama2c
from tinygpt.fileio import atomic_write, write_json
from tinygpt.model import GPT
from tinygpt.tokenizer import EOT, Tokenizer

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
    writer = write_hf if format == "hf" else llama2c.write

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_dir(out_dir, "tmp")
    try:
        writer(model, tokenizer, tmp)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


def _new_dir(out_dir: Path, kind: str) -> Path:
    """A new hidden directory `.NAME.KIND...` beside `out_dir` (with the umask's permissions,
    unlike `tempfile.mkdtemp`'s 0700: it becomes the export)."""
    while True:
        path = out_dir.with_name(f".{out_dir.name}.{kind}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every filesystem lets a directory be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Renames the complete `tmp` to `out_dir`; an existing `out_dir` steps aside first and is
    deleted after."""
    _fsync_dir(tmp)
    old = None
    if out_dir.exists():
        old = _new_dir(out_dir, "old")
        os.rename(out_dir, old / out_dir.name)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old / out_dir.name, out_dir)
            old.rmdir()
        raise
    _fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Hugging Face
# ------------------------------------------------------------------------------------------------

def hf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face Llama names, float32 on the CPU. The rotary layout
    is the same (half-split, as `rotate_half`), so q and k need no permutation."""
    c = model.config
    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    out = {"model.embed_tokens.weight": sd["tok_embeddings.weight"], "model.norm.weight": sd["norm.weight"]}
    names = {
        "norm1": "input_layernorm", "norm2": "post_attention_layernorm",
        "attn.wq": "self_attn.q_proj", "attn.wk": "self_attn.k_proj", "attn.wv": "self_attn.v_proj",
        "attn.wo": "self_attn.o_proj", "mlp.w1": "mlp.gate_proj", "mlp.w3": "mlp.up_proj",
        "mlp.w2": "mlp.down_proj",
    }
    for i in range(c.n_layers):
        for ours, theirs in names.items():
            out[f"model.layers.{i}.{theirs}.weight"] = sd[f"layers.{i}.{ours}.weight"]
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["output.weight"]
    return out


def hf_config(model: GPT, tokenizer: Tokenizer) -> dict:
    """config.json of a LlamaForCausalLM with the model's shape."""
    c = model.config
    eot = tokenizer.eot_token
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.dim,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": c.norm_eps,
        "hidden_act": "silu",
        # rope_theta for transformers 4.x, rope_parameters for 5.x
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "tie_word_embeddings": c.tie_embeddings,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "use_cache": True,
        "torch_dtype": "float32",  # transformers 4.x
        "dtype": "float32",  # transformers 5.x
    }


def write_hf(model: GPT, tokenizer: Tokenizer, directory) -> None:
    """config.json, model.safetensors, generation_config.json and the tokenizer files."""
    directory = Path(directory)
    data = safetensors.torch.save(hf_tensors(model), metadata={"format": "pt"})
    with atomic_write(directory / "model.safetensors", "wb") as f:
        f.write(data)
    write_json(directory / "config.json", hf_config(model, tokenizer), indent=2)
    eot = tokenizer.eot_token
    generation = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot} if eot is not None else {}
    write_json(directory / "generation_config.json", generation, indent=2)

    tokenizer.to_huggingface(directory / "tokenizer.json")
    specials = {"bos_token": EOT, "eos_token": EOT} if eot is not None else {}
    write_json(directory / "special_tokens_map.json", specials, indent=2)
    write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": model.config.max_seq_len,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
    }, indent=2)
