"""Pretokenized shards: `DIR/train.bin`, `DIR/val.bin`, `DIR/tokenizer.json`, `DIR/meta.json`.

A `.bin` is a flat array of token ids (uint16, or uint32 for vocabularies over 65,536), each story
followed by `<|endoftext|>`. `meta.json` is written last and lists every file's token count, so
a directory without it, or whose files disagree with it, is an unfinished or damaged prepare and
is refused. `WindowLoader` draws training windows from the memory-mapped tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from tinygpt.fileio import read_versioned_json, write_json
from tinygpt.tokenizer import Tokenizer

FORMAT = "tinygpt-shards"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
META, TOKENIZER = "meta.json", "tokenizer.json"


def dtype_for(vocab_size: int, requested: str = "auto") -> str:
    """The token dtype for a vocabulary: uint16 while ids fit, else uint32."""
    if requested not in ("auto", "uint16", "uint32"):
        raise ValueError(f"dtype must be auto, uint16 or uint32, got {requested!r}")
    if requested == "uint16" and vocab_size > 1 << 16:
        raise ValueError(
            f"a vocabulary of {vocab_size} tokens does not fit in uint16 (ids up to 65535): "
            "use dtype uint32 (or auto)"
        )
    if requested != "auto":
        return requested
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


class ShardError(ValueError):
    """A shard directory that cannot be used (unfinished, damaged, or from another tokenizer)."""


def write_meta(path: str, meta: dict) -> dict:
    """Writes `path/meta.json` (atomically): `meta` after this format's "format" and "version" keys;
    returns what it wrote. Write it last: it marks the directory finished."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **meta}
    write_json(os.path.join(path, META), meta, indent=2)
    return meta


def remove_meta(path: str) -> None:
    """Marks `path` unfinished, before the files that `meta.json` describes change under it."""
    meta_path = os.path.join(path, META)
    if os.path.exists(meta_path):
        os.remove(meta_path)


def read_meta(path: str) -> dict:
    """The metadata `write_meta` wrote in the directory `path`, of this format version or an older one;
    `ShardError` when it is missing (an unfinished prepare), unreadable, of another kind, or newer."""
    meta_path = os.path.join(path, META)
    if not os.path.isfile(meta_path):
        raise ShardError(
            f"{path} has no {META}: it is not a prepared directory, or its `tinygpt prepare` did "
            "not finish; run it again"
        )
    try:
        return read_versioned_json(meta_path, FORMAT, FORMAT_VERSION, "tinygpt shard metadata file", ShardError)
    except OSError as e:
        raise ShardError(f"{meta_path} is unreadable ({e}); run `tinygpt prepare` again") from None


@dataclass
class Shards:
    """A prepared directory, checked: its metadata, tokenizer, and memory-mapped token arrays."""

    path: str
    meta: dict
    tokenizer: Tokenizer

    def tokens(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        n = self.meta["splits"][split]["tokens"]
        if n == 0:
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(os.path.join(self.path, f"{split}.bin"), dtype=self.meta["dtype"], mode="r", shape=(n,))

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    @property
    def eot_token(self) -> int:
        return self.meta["eot_token"]


def open_shards(path: str, tokenizer: Tokenizer | None = None) -> Shards:
    """Opens a prepared directory. With `tokenizer`, refuses shards made by another tokenizer."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such shard directory: {path} (make one with `tinygpt prepare`)")
    meta = read_meta(path)
    itemsize = np.dtype(meta["dtype"]).itemsize
    for split in SPLITS:
        f = os.path.join(path, f"{split}.bin")
        want = meta["splits"][split]["tokens"] * itemsize
        have = os.path.getsize(f) if os.path.isfile(f) else None
        if have != want:
            raise ShardError(
                f"{f} is {'missing' if have is None else f'{have} bytes'} but {META} says {want} "
                "bytes: the directory is damaged or half-written; run `tinygpt prepare` again"
            )
    tok = Tokenizer.load(os.path.join(path, TOKENIZER))
    if tok.fingerprint != meta["tokenizer"]["sha256"]:
        raise ShardError(
            f"{path}/{TOKENIZER} is not the tokenizer these shards were made with "
            f"({tok.fingerprint[:12]} vs {meta['tokenizer']['sha256'][:12]}); prepare them again"
        )
    if tokenizer is not None and tokenizer.fingerprint != tok.fingerprint:
        raise ShardError(
            f"the shards in {path} were made with another tokenizer ({tok.fingerprint[:12]}) than "
            f"the one given ({tokenizer.fingerprint[:12]}): token ids would mean different text. "
            "Prepare the data with this tokenizer (`tinygpt prepare --tokenizer FILE`)"
        )
    return Shards(path, meta, tok)


class ShardWriter:
    """Appends token arrays to `<final>.partial`; `commit` makes the file final at once."""

    def __init__(self, final_path: str, dtype: str):
        self.final_path, self.dtype = final_path, np.dtype(dtype)
        self.tmp_path = final_path + ".partial"
        self._f = open(self.tmp_path, "wb")
        self.tokens = 0

    def write(self, ids: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(ids, dtype=self.dtype).tobytes())
        self.tokens += len(ids)

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.tmp_path, self.final_path)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:
            os.remove(self.tmp_path)
        except FileNotFoundError:
            pass


class WindowLoader:
    """Random (B, T+1) windows from a token array: deterministic from `seed` and the step, and
    shardable: rank `r` of `world_size` gets its own windows, disjoint from the other ranks'.

    Each epoch cuts the tokens into windows of T tokens at a random offset and shuffles them;
    global window `k` of step `s` is position `(s * world_size + rank) * B + k` in that stream, so
    `batch(step)` needs no state and a resumed run picks up exactly where it stopped.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
        n = len(tokens)
        if n < seq_len + 1:
            raise ValueError(
                f"the shard has {n} tokens, fewer than seq_len + 1 = {seq_len + 1}: use a shorter "
                "--seq-len or more data"
            )
        self.tokens, self.B, self.T = tokens, batch_size, seq_len
        self.seed, self.rank, self.world = seed, rank, world_size
        # with a random offset in [0, T) every window must still fit
        self.windows = (n - 1) // seq_len - 1
        self.shift = self.windows >= 1
        if not self.shift:
            self.windows = (n - 1) // seq_len
        self._epoch, self._perm, self._offset = -1, None, 0

    def _epoch_order(self, epoch: int) -> None:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._offset = int(rng.integers(self.T)) if self.shift else 0
            self._perm = rng.permutation(self.windows)
            self._epoch = epoch

    def starts(self, step: int) -> np.ndarray:
        first = (step * self.world + self.rank) * self.B
        out = np.empty(self.B, dtype=np.int64)
        for k in range(self.B):
            epoch, i = divmod(first + k, self.windows)
            self._epoch_order(epoch)
            out[k] = self._offset + self._perm[i] * self.T
        return out

    def batch(self, step: int) -> torch.Tensor:
        """The (B, T+1) int64 windows of `step`; inputs are [:, :-1], targets [:, 1:]."""
        idx = self.starts(step)[:, None] + np.arange(self.T + 1)
        return torch.from_numpy(self.tokens[idx].astype(np.int64))

    def epoch_of(self, step: int) -> float:
        """Passes over the data made before `step` (fractional)."""
        return (step * self.world * self.B) / self.windows


def sequential_windows(tokens: np.ndarray, batch_size: int, seq_len: int, max_tokens: int | None = None, *,
                       rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Evaluation windows: consecutive (B, T+1) batches from the start, the last window shorter
    so that every token after the first is a target exactly once, capped at about `max_tokens`
    targets; batches are dealt out to `rank` of `world_size`."""
    if max_tokens is not None:
        tokens = tokens[: max(1, max_tokens) + 1]
    if len(tokens) < 2:
        return
    full = (len(tokens) - 1) // seq_len
    batches = range(0, full, batch_size)
    for i, b in enumerate(batches):
        if i % world_size == rank:
            starts = np.arange(b, min(full, b + batch_size)) * seq_len
            yield torch.from_numpy(tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
    if len(tokens) - 1 > full * seq_len and len(batches) % world_size == rank:
        yield torch.from_numpy(np.asarray(tokens[full * seq_len:], dtype=np.int64)[None])
