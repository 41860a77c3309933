"""Limits and defaults shared by the tokenizer's modules (a leaf: it imports none of them)."""

from __future__ import annotations

import os

# Ids index dense tables, so a crafted file must not ask for gigabytes: 2^20 ids is four times
# the largest vocabularies in use (about 256k).
MAX_VOCAB_SIZE = 1 << 20
MAX_ID = MAX_VOCAB_SIZE  # ids are in [0, MAX_ID)
# Real tokens are at most a few hundred bytes; only a run of one character thousands long makes
# a longer one, and the trainer leaves those out, so every trained tokenizer loads.
MAX_TOKEN_BYTES = 1 << 16


def default_threads(num_threads: int | None) -> int:
    """`num_threads` checked, or (None) the CPUs this process may run on."""
    if num_threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return num_threads
