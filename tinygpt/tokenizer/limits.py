"""Limits and defaults shared by the tokenizer's modules (a leaf: it imports none of them)."""

from __future__ import annotations

import os

MAX_ID = 1 << 24  # ids index dense tables: a corrupt file must not ask for gigabytes


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
