"""Hugging Face export: a directory that `transformers.AutoModelForCausalLM.from_pretrained` loads
as a `LlamaForCausalLM`, and `AutoTokenizer.from_pretrained` as a fast tokenizer that encodes
exactly as tinygpt's."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch
import torch

from tinygpt.fileio import atomic_write, write_json
from tinygpt.model import GPT
from tinygpt.tokenizer import EOT, Tokenizer


def tensors(model: GPT) -> dict[str, torch.Tensor]:
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


def config(model: GPT, tokenizer: Tokenizer) -> dict:
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


def write(model: GPT, tokenizer: Tokenizer, directory) -> None:
    """config.json, model.safetensors, generation_config.json and the tokenizer files."""
    directory = Path(directory)
    data = safetensors.torch.save(tensors(model), metadata={"format": "pt"})
    with atomic_write(directory / "model.safetensors", "wb") as f:
        f.write(data)
    write_json(directory / "config.json", config(model, tokenizer), indent=2)
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
