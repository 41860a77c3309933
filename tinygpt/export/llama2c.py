"""Writing a model in the format of llama2.c's `run.c` (github.com/karpathy/llama2.c).

`run.c` reads the version-0 ("legacy") model file and a `tokenizer.bin`:

- `model.bin`: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
  seq_len; vocab_size is negative when the classifier is not the token embedding), then float32
  arrays: the token embedding (vocab, dim); the attention norms (n_layers, dim); wq, wk, wv, wo;
  the MLP norms (n_layers, dim); w1, w2, w3; the final norm (dim); the rotary cos and sin tables
  (seq_len, head_dim / 2), which run.c skips; and the classifier (vocab, dim) when unshared.
  Matrices are stored as PyTorch Linear weights, (out_features, in_features), row-major, stacked
  over the layers.
- `tokenizer.bin`: int32 max_token_length, then for each token id in order: float32 score, int32
  length, the piece's bytes.

The weights are exact: run.c computes the same function as tinygpt's model. run.c turns
interleaved pairs (2i, 2i+1) of each head by the angle pos * 10000^(-2i/head_dim), where tinygpt
(like Hugging Face Llama) turns the pairs (i, i + head_dim/2) by the same angles, so the rows of wq
and wk are reordered within each head. run.c hard-codes rope theta 10000 and RMSNorm eps 1e-5;
other models are refused.

The tokenizer is approximate: run.c's encoder is llama2.c's own. It prepends token id 1 as BOS
(tinygpt's id 1 is the byte 0x01, not `<|endoftext|>`) and adds a space before the prompt; it has
no pre-tokenizer, so merges may cross the word boundaries tinygpt's BPE respects; characters that
are not whole tokens fall back to ids byte + 3 (SentencePiece's layout, not tinygpt's). Its merge
step (repeatedly merge the adjacent pair whose concatenation has the highest score) matches
tinygpt's BPE within a word, because each merged token's score is minus its merge rank. When
generating, run.c stops only at id 1, never at `<|endoftext|>`, which it prints as text, and
single bytes that are not printable ASCII (e.g. parts of a multi-byte character) are not printed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from tinygpt.fileio import atomic_write
from tinygpt.model import GPT
from tinygpt.ops import reference
from tinygpt.tokenizer import Tokenizer

MODEL_FILE = "model.bin"
TOKENIZER_FILE = "tokenizer.bin"
ROPE_THETA = 10000.0
NORM_EPS = 1e-5
# Scores are compared with `>` against a start of -1e10, so a piece with this score is never
# the result of a merge (bytes, special tokens, unused ids).
NEVER = -1e10
# The piece of an id no token uses: run.c cannot read an empty piece, and decodes this one to a
# NUL byte, which it does not print.
UNUSED = b"<0x00>"


def check(model: GPT) -> None:
    """Raises ValueError if run.c cannot compute this model exactly."""
    c = model.config
    if c.rope_theta != ROPE_THETA:
        raise ValueError(
            f"llama2.c's run.c hard-codes rope theta {ROPE_THETA:g}; this model has rope_theta "
            f"{c.rope_theta:g} (export it in the hf format instead)"
        )
    if c.norm_eps != NORM_EPS:
        raise ValueError(
            f"llama2.c's run.c hard-codes RMSNorm eps {NORM_EPS:g}; this model has norm_eps "
            f"{c.norm_eps:g} (export it in the hf format instead)"
        )
    sizes = {"dim": c.dim, "hidden_dim": c.ffn_dim, "n_layers": c.n_layers, "n_heads": c.n_heads,
             "n_kv_heads": c.kv_heads, "vocab_size": c.vocab_size, "max_seq_len": c.max_seq_len}
    too_big = [f"{name} {v}" for name, v in sizes.items() if v >= 2**31]
    if too_big:
        raise ValueError(
            f"the llama2.c header holds int32 sizes, and this model's {', '.join(too_big)} does not fit "
            "(export it in the hf format instead)"
        )


def _interleave(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Rows of a q or k projection reordered per head from the half-split rotary layout (row i
    pairs with row i + head_dim/2) to the interleaved one (pair i in rows 2i, 2i+1)."""
    return w.reshape(heads, 2, head_dim // 2, -1).transpose(1, 2).reshape(heads * head_dim, -1)


def _arrays(model: GPT):
    """The float32 arrays of model.bin after the header, in file order."""
    c = model.config
    sd = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    layers = range(c.n_layers)

    def stack(name, fn=lambda w: w):
        return torch.stack([fn(sd[f"layers.{i}.{name}"]) for i in layers])

    yield sd["tok_embeddings.weight"]
    yield stack("norm1.weight")
    yield stack("attn.wq.weight", lambda w: _interleave(w, c.n_heads, c.head_dim))
    yield stack("attn.wk.weight", lambda w: _interleave(w, c.kv_heads, c.head_dim))
    yield stack("attn.wv.weight")
    yield stack("attn.wo.weight")
    yield stack("norm2.weight")
    yield stack("mlp.w1.weight")
    yield stack("mlp.w2.weight")
    yield stack("mlp.w3.weight")
    yield sd["norm.weight"]
    cos, sin = reference.rope_tables(c.max_seq_len, c.head_dim, ROPE_THETA)
    yield cos
    yield sin
    if not c.tie_embeddings:
        yield sd["output.weight"]


def header(model: GPT) -> bytes:
    c = model.config
    vocab = c.vocab_size if c.tie_embeddings else -c.vocab_size
    return struct.pack("<7i", c.dim, c.ffn_dim, c.n_layers, c.n_heads, c.kv_heads, vocab, c.max_seq_len)


def write_model(model: GPT, path) -> None:
    """Writes `model` as a llama2.c version-0 model file (atomically)."""
    check(model)
    with atomic_write(path, "wb") as f:
        f.write(header(model))
        for a in _arrays(model):
            f.write(np.ascontiguousarray(a.numpy(), dtype="<f4").tobytes())


def _printable(b: int) -> bool:
    """Bytes that run.c prints and finds in its vocabulary as themselves: printable ASCII and
    ASCII whitespace."""
    return 0x20 <= b < 0x7F or b in b"\t\n\v\f\r"


def piece(token: bytes, special: bool = False) -> bytes:
    """The tokenizer.bin piece of a token: its bytes, or `<0xXX>` (which run.c's decoder turns
    back into that byte) for a single byte that is not printable ASCII. Special tokens are their
    text. A longer token containing a NUL byte is written as is (run.c's C strings end there)."""
    if not special and len(token) == 1 and not _printable(token[0]):
        return b"<0x%02X>" % token[0]
    return token


def _merge_ranks(tokenizer: Tokenizer) -> dict[int, int]:
    """Token id -> rank of the first merge that makes it."""
    merges = tokenizer.merges()
    ids = {}
    for i in range(tokenizer.vocab_size):
        try:
            ids.setdefault(tokenizer.token_bytes(i), i)
        except ValueError:  # an unused id
            pass
    ranks: dict[int, int] = {}
    for rank, (a, b) in enumerate(merges):
        made = ids.get(tokenizer.token_bytes(a) + tokenizer.token_bytes(b))
        if made is not None:
            ranks.setdefault(made, rank)
    return ranks


def tokenizer_pieces(tokenizer: Tokenizer, vocab_size: int) -> list[tuple[bytes, float]]:
    """(piece, score) for each id below `vocab_size` (the model's vocabulary, which may be larger
    than the tokenizer's). A merged token scores minus its merge rank, so that run.c merges in
    tinygpt's order; everything else scores NEVER. Ids no token uses get the piece UNUSED."""
    specials = set(tokenizer.special_tokens.values())
    ranks = _merge_ranks(tokenizer)
    out = []
    for i in range(vocab_size):
        try:
            token = tokenizer.token_bytes(i) if i < tokenizer.vocab_size else None
        except ValueError:
            token = None
        if token is None:
            out.append((UNUSED, NEVER))
        else:
            score = -float(ranks[i]) if i in ranks and i not in specials else NEVER
            out.append((piece(token, i in specials), score))
    return out


def write_tokenizer(tokenizer: Tokenizer, vocab_size: int, path) -> None:
    """Writes run.c's tokenizer.bin for the ids below `vocab_size` (atomically)."""
    pieces = tokenizer_pieces(tokenizer, vocab_size)
    with atomic_write(path, "wb") as f:
        f.write(struct.pack("<i", max((len(p) for p, _ in pieces), default=1)))
        for p, score in pieces:
            f.write(struct.pack("<fi", score, len(p)))
            f.write(p)


def write(model: GPT, tokenizer: Tokenizer, directory) -> None:
    """`model.bin` and `tokenizer.bin` into `directory`; run them with
    `./run model.bin -z tokenizer.bin`."""
    directory = Path(directory)
    write_model(model, directory / MODEL_FILE)
    write_tokenizer(tokenizer, model.config.vocab_size, directory / TOKENIZER_FILE)
