"""`tinygpt prepare`: stories -> tokenizer -> `train.bin` / `val.bin` shards (see `tinygpt.data.shards`)."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from itertools import chain
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from tinygpt.data import readers
from tinygpt.data.shards import (
    META, TOKENIZER, ShardError, ShardWriter, dtype_for, open_shards, remove_meta, write_meta,
)
from tinygpt.tokenizer import Tokenizer

DEFAULT_VAL_FRACTION = 0.02
_BATCH_BYTES = 2 << 20  # stories are encoded in batches of about this much text


def _val_picker(fraction: float, seed: int):
    """Whether a story goes to validation: a keyed hash of its text, so the split is the same
    whatever the order or sharding of the input, and duplicates land on the same side."""
    if fraction <= 0:
        return lambda s: False
    limit = int(fraction * (1 << 64))
    key = seed.to_bytes(8, "little", signed=True)

    def is_val(story: str) -> bool:
        h = hashlib.blake2b(story.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
        return int.from_bytes(h, "little") < limit

    return is_val


def _batches(stories: Iterable[str], split_of) -> Iterator[tuple[str, list[str]]]:
    """(split, stories) batches of about _BATCH_BYTES of text each."""
    pending = {"train": [], "val": []}
    size = {"train": 0, "val": 0}
    for s in stories:
        sp = split_of(s)
        pending[sp].append(s)
        size[sp] += len(s)
        if size[sp] >= _BATCH_BYTES:
            yield sp, pending[sp]
            pending[sp], size[sp] = [], 0
    for sp in ("train", "val"):
        if pending[sp]:
            yield sp, pending[sp]


def _prefetch(it: Iterator, depth: int = 3) -> Iterator:
    """Runs `it` in a thread so reading and cleaning overlap the (GIL-free) native encoding."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def run() -> None:
        try:
            for item in it:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # handed to the consumer, which re-raises it
            q.put(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def prepare(
    inputs: Sequence[str] | str,
    out: str,
    *,
    vocab_size: int = 4096,
    tokenizer: str | Tokenizer | None = None,
    val: Sequence[str] | str | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    pattern: str = "gpt4",
    dtype: str = "auto",
    num_threads: int | None = None,
    errors: str = "strict",
    overwrite: bool = False,
    progress: bool = True,
    instruct: bool = False,
) -> dict:
    """Reads and cleans the stories in `inputs`, trains a tokenizer (or uses `tokenizer`), and
    writes `out/train.bin`, `out/val.bin`, `out/tokenizer.json` and `out/meta.json`.
    Validation stories come from `val` files, or else a `val_fraction` of the input chosen by a
    hash of each story keyed by `seed`. With `instruct`, the inputs are JSON records and each
    story is written as its TinyStories-Instruct entry (`tinygpt.llmstories.instruct.record_entry`);
    records without instruct fields are skipped and counted. Returns the metadata written."""
    val_fraction = _val_fraction(val, val_fraction)
    train_files = readers.list_files(inputs)
    val_files = readers.list_files(val) if val is not None else []
    record = _instruct_record(train_files + val_files) if instruct else None
    out = _out_dir(out)
    tok = Tokenizer.load(tokenizer) if isinstance(tokenizer, (str, os.PathLike)) else tokenizer
    if tok is not None and tok.eot_token is None:
        raise ValueError("the tokenizer has no <|endoftext|> token, which the shards put after every story")
    _check_out(out, tok, overwrite)

    is_val = _val_picker(val_fraction, seed)
    if tok is None:
        tok = _train_tokenizer(train_files, is_val, errors, record, vocab_size=vocab_size, pattern=pattern,
                               num_threads=num_threads, progress=progress)
    kind = dtype_for(tok.vocab_size, dtype)
    stats = {"train": readers.ReadStats(), "val": readers.ReadStats()}
    writers = {sp: ShardWriter(os.path.join(out, f"{sp}.bin"), kind) for sp in ("train", "val")}
    try:
        streams = _streams(train_files, val_files, is_val, stats, errors, record)
        counts = _tokenize(tok, streams, writers, _total_bytes(train_files + val_files), num_threads, progress)
        _check_counts(counts, train_files, val_files, val_fraction, stats["train"].skipped)
        meta = {
            "dtype": kind,
            "vocab_size": tok.vocab_size,
            "eot_token": tok.eot_token,
            "tokenizer": {"file": TOKENIZER, "sha256": tok.fingerprint, "trained_here": tokenizer is None},
            "splits": {sp: {"tokens": writers[sp].tokens, **counts[sp]} for sp in ("train", "val")},
            "sources": {"train": [_source(f) for f in train_files], "val": [_source(f) for f in val_files]},
            "val_fraction": None if val_files else val_fraction,
            "seed": seed,
            "instruct": instruct,
            "reading": {sp: stats[sp].__dict__.copy() for sp in ("train", "val") if stats[sp].files},
        }
        meta = _commit(out, tok, writers, meta)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    meta["summary"] = {sp: stats[sp].summary() for sp in ("train", "val") if stats[sp].files}
    return meta


def _train_tokenizer(train_files, is_val, errors, record, **settings) -> Tokenizer:
    """A tokenizer trained on the training stories (as they will be written)."""
    read = readers.ReadStats()
    train_only = (s for s in readers.iter_stories(train_files, errors=errors, record=record, stats=read)
                  if not is_val(s))
    try:
        return Tokenizer.train(train_only, settings.pop("vocab_size"), **settings)
    except ValueError:
        if read.stories == 0 and read.skipped:  # say why nothing was left
            _check_counts({sp: {"stories": 0} for sp in ("train", "val")}, train_files, [], 0.0, read.skipped)
        raise


def _val_fraction(val, val_fraction: float | None) -> float:
    if val is not None and val_fraction is not None:
        raise ValueError("give either val files or val_fraction, not both")
    if val_fraction is None:
        val_fraction = 0.0 if val is not None else DEFAULT_VAL_FRACTION
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return val_fraction


def _out_dir(out) -> str:
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ShardError(f"--out {out} exists and is not a directory")
    os.makedirs(out, exist_ok=True)
    return out


def _total_bytes(files: list[str]) -> int | None:
    """What the progress bar counts to: the files' sizes (unknown for a Hugging Face dataset)."""
    on_disk = [f for f in files if not f.startswith(readers.HF_PREFIX)]
    return sum(os.path.getsize(f) for f in on_disk) if len(on_disk) == len(files) else None


def _instruct_record(files: list[str]):
    """What turns a JSON record into its instruct entry; bare stories have no words to give."""
    from tinygpt.llmstories.instruct import record_entry

    for f in files:
        if not f.lower().removesuffix(".gz").endswith((".json", ".jsonl")):
            raise ValueError(f"instruct=True reads JSON records (.json or .jsonl: each story with its words "
                             f"and features, or an \"instruct\" object), and {f} holds bare stories")
    return record_entry


def _streams(train_files, val_files, is_val, stats, errors, record=None):
    """(split, batch of stories) pairs: the --val files' stories go to val, else the hash decides."""
    train = readers.iter_stories(train_files, stats=stats["train"], errors=errors, record=record)
    if val_files:
        val = readers.iter_stories(val_files, stats=stats["val"], errors=errors, record=record)
        return chain(_batches(train, lambda s: "train"), _batches(val, lambda s: "val"))
    return _batches(train, lambda s: "val" if is_val(s) else "train")


def _tokenize(tok, streams, writers, total, num_threads, progress) -> dict:
    """Encodes each batch (an end-of-text after every story) into its split's writer."""
    counts = {sp: {"stories": 0, "bytes": 0} for sp in ("train", "val")}
    with tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing", disable=not progress) as bar:
        for sp, batch in _prefetch(streams):
            flat = tok.encode_batch_flat(batch, separator=tok.eot_token, disallowed_special=(),
                                         num_threads=num_threads)
            writers[sp].write(np.frombuffer(flat, dtype=np.uint32))
            nbytes = sum(len(s.encode("utf-8")) for s in batch)
            counts[sp]["stories"] += len(batch)
            counts[sp]["bytes"] += nbytes
            bar.update(nbytes)
        if total is not None:  # separators and cleaned-away whitespace were not counted
            bar.update(max(0, total - bar.n))
    return counts


def _check_counts(counts, train_files, val_files, val_fraction, skipped: int = 0) -> None:
    if counts["train"]["stories"] == 0:
        raise ValueError(
            "empty corpus: no training stories in " + ", ".join(train_files)
            + (" (all of them went to validation: lower --val-fraction)" if counts["val"]["stories"] else "")
            + (f" (instruct=True skipped {skipped} record{'' if skipped == 1 else 's'} without words, features "
               "or an \"instruct\" object)" if skipped else "")
        )
    if counts["val"]["stories"] == 0 and (val_files or val_fraction > 0):
        raise ValueError(
            "the validation split is empty: " + ("the --val files hold no stories" if val_files else
            f"no story fell in the {val_fraction:g} fraction; raise --val-fraction or pass --val FILE")
        )


def _commit(out, tok, writers, meta) -> dict:
    """Publishes the shards and the tokenizer, then meta.json, which marks the directory finished
    (the old one goes first, before the files change under it)."""
    remove_meta(out)
    for w in writers.values():
        w.commit()
    tok.save(os.path.join(out, TOKENIZER))
    return write_meta(out, meta)


def _source(f: str) -> str:
    return f if f.startswith(readers.HF_PREFIX) else os.path.abspath(f)


def _check_out(out: str, tok: Tokenizer | None, overwrite: bool) -> None:
    """Never silently replace finished shards, and never mix shards of two tokenizers."""
    if not os.path.exists(os.path.join(out, META)):
        return
    try:
        existing = open_shards(out)
        old = existing.meta["tokenizer"]["sha256"]
    except (ShardError, ValueError, OSError):
        old = None
    if overwrite:
        return
    if tok is not None and old is not None and old != tok.fingerprint:
        raise ShardError(
            f"{out} already holds shards made with another tokenizer ({old[:12]}, this one is "
            f"{tok.fingerprint[:12]}); shards of two tokenizers must not mix. Choose another --out, "
            "or pass --overwrite to replace them all"
        )
    raise ShardError(f"{out} already holds prepared shards; choose another --out, or pass --overwrite to replace them")
