"""Learning a byte-level BPE vocabulary (`Tokenizer.train`): reading the sources (str or files),
counting pre-tokens (natively for the built-in patterns, with `regex` for a custom one) and
learning the merges natively.

Returns plain data (the constructor's arguments); it imports nothing from `core`."""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from typing import Iterable, Sequence

from tqdm.auto import tqdm

from tinygpt._native import _C
from tinygpt.tokenizer.limits import MAX_TOKEN_BYTES, MAX_VOCAB_SIZE, default_threads
from tinygpt.tokenizer.patterns import resolve, split_covering

# Lone surrogates are not text: like special tokens, they are cut out of what is counted.
_LONE_SURROGATES = re.compile("[\ud800-\udfff]+")


def _check_specials(vocab_size, special_tokens) -> tuple[list[str], int]:
    """(special token names, the smallest vocabulary they allow)."""
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if isinstance(special_tokens, str):
        special_tokens = (special_tokens,)
    specials = list(special_tokens)
    if len(set(specials)) != len(specials):
        raise ValueError(f"duplicate special tokens: {specials}")
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty str, got {s!r}")
    minimum = 256 + len(specials)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least 256 byte "
            f"tokens + {len(specials)} special tokens = {minimum}"
        )
    if vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(f"vocab_size={vocab_size} is more than the {MAX_VOCAB_SIZE} a tokenizer may have")
    return specials, minimum


def train(
    texts,
    vocab_size: int,
    *,
    pattern: str,
    special_tokens: Sequence[str],
    num_threads: int | None,
    progress: bool,
) -> dict:
    """The arguments of the `Tokenizer` constructor (tokens, special_tokens, pattern) for the
    vocabulary learned from `texts`; see `Tokenizer.train`."""
    specials, minimum = _check_specials(vocab_size, special_tokens)
    pat, kind = resolve(pattern)
    counter = _C.WordCounter(kind, specials, default_threads(num_threads))
    sources = list(iter_sources(texts)) if isinstance(texts, (list, tuple)) else iter_sources(texts)
    total = None
    if isinstance(sources, list) and all(k == "file" for k, _ in sources):
        total = sum(os.path.getsize(p) for _, p in sources if os.path.isfile(p))
    with tqdm(total=total, unit="B", unit_scale=True, desc="reading text", disable=not progress) as bar:
        if kind == "custom":
            count_custom(counter, sources, pat, specials, bar)
        else:
            count_native(counter, sources, bar)
    if counter.num_bytes == 0:
        raise ValueError("empty corpus: there is no text to train on")
    want = vocab_size - minimum
    new_tokens, left_out = _learn(counter, want)
    if left_out:
        warnings.warn(
            f"{left_out} learned {'token was' if left_out == 1 else 'tokens were'} longer than "
            f"{MAX_TOKEN_BYTES} bytes (only a run of one character that long makes one) and left out; "
            "other merges were learned in their place",
            stacklevel=3,  # the caller of Tokenizer.train
        )
    if len(new_tokens) < want:
        warnings.warn(
            f"the corpus only supports {len(new_tokens)} merges, so the vocabulary has "
            f"{minimum + len(new_tokens)} tokens instead of {vocab_size}",
            stacklevel=3,
        )
    tokens = [bytes([b]) for b in range(256)] + list(new_tokens)
    ids = {s: len(tokens) + k for k, s in enumerate(specials)}
    return {"tokens": tokens, "special_tokens": ids, "pattern": pat}


def _learn(counter, want: int) -> tuple[list[bytes], int]:
    """Up to `want` new tokens of at most MAX_TOKEN_BYTES, and how many longer ones were left out.
    A longer token only ever merges into longer ones, so what is kept is still a whole BPE
    vocabulary; more merges are learned until `want` are kept or the corpus has no more."""
    asked = want
    while True:
        new_tokens, _ = counter.train(asked)
        kept = [t for t in new_tokens if len(t) <= MAX_TOKEN_BYTES]
        if len(kept) >= want or len(new_tokens) < asked:
            return kept[:want], len(new_tokens) - len(kept)
        asked += want - len(kept)


def _looks_like_paths(items: Sequence) -> bool:
    """A list of str is taken as file paths only when every entry names an existing file."""
    if not items:
        return False
    if all(isinstance(x, os.PathLike) for x in items):
        return True
    return all(
        isinstance(x, str) and len(x) < 4096 and "\n" not in x and os.path.isfile(x) for x in items
    )


def _plain_file(path: str) -> str:
    """`path`, which is read as plain UTF-8 text: a compressed file would fail at its first byte."""
    if path.lower().endswith(".gz"):
        raise ValueError(
            f"{path} is gzip-compressed, and training reads files as plain UTF-8 text: pass "
            "tinygpt.data.readers.iter_stories(paths) instead, which reads .gz, .json and .jsonl story "
            "files and folders (as `tinygpt tokenizer train` does)"
        )
    return path


def iter_sources(texts: Iterable) -> Iterable[tuple[str, str]]:
    """Yields ('file', path) or ('text', str)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "texts must be an iterable of str or a list of file paths, not a single "
            f"{type(texts).__name__}: wrap it in a list"
        )
    if isinstance(texts, os.PathLike):
        texts = [texts]
    if isinstance(texts, (list, tuple)) and _looks_like_paths(texts):
        for p in texts:
            yield "file", _plain_file(os.fspath(p))
        return
    for t in texts:
        if isinstance(t, os.PathLike):
            yield "file", _plain_file(os.fspath(t))
        elif isinstance(t, str):
            yield "text", t
        else:
            raise TypeError(f"texts must contain str or paths, got {type(t).__name__}")


def count_native(counter, sources, bar) -> None:
    """Counts with the native pre-tokenizer: files streamed natively, str in 8 MB batches."""
    batch: list[str] = []
    size = 0

    def flush() -> None:
        before = counter.num_bytes
        try:
            counter.add_texts(batch)
        except UnicodeEncodeError:  # the native counter takes UTF-8 only
            counter.add_texts([p for t in batch for p in _LONE_SURROGATES.split(t)])
        bar.update(counter.num_bytes - before)
        batch.clear()

    for kind, item in sources:
        if kind == "file":
            if not os.path.isfile(item):
                raise FileNotFoundError(f"training file not found: {item}")
            done = [0]

            def advance(n: int) -> None:
                bar.update(n - done[0])
                done[0] = n

            counter.add_file(item, advance)
            continue
        batch.append(item)
        size += len(item)
        if size >= 8 << 20:
            flush()
            size = 0
    if batch:
        flush()


def count_custom(counter, sources, pat: str, specials: list[str], bar) -> None:
    """Counts the pre-tokens of a custom pattern in Python, then hands the counts over."""
    import regex

    rx = regex.compile(pat)
    cut = regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
    counts: Counter = Counter()

    def add(text: str) -> None:
        for seg in cut.split(text) if specials else [text]:
            for part in _LONE_SURROGATES.split(seg):
                counts.update(split_covering(rx, part))

    # The slow path: files are read whole, since a custom pattern has no known safe cut points.
    for kind, item in sources:
        if kind == "file":
            if not os.path.isfile(item):
                raise FileNotFoundError(f"training file not found: {item}")
            with open(item, "rb") as f:
                raw = f.read()
            try:
                add(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(f"'{item}' is not valid UTF-8 at byte offset {e.start}") from None
            bar.update(len(raw))
        else:
            add(item)
            bar.update(len(item.encode("utf-8", "surrogatepass")))
    for piece, n in sorted(counts.items()):
        counter.add_piece(piece.encode(), n)
