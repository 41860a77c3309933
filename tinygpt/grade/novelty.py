"""How much of a story is copied from the training data: a suffix array over the training tokens.

`NoveltyIndex` gives, for each position i of a token query, the longest prefix of query[i:] found
in the corpus and where (`longest_matches`); a query's longest shared span (`longest_span`); and
its 4-gram overlap with the training story holding that span (`closest_story_overlap`). Spans are
capped at `depth` tokens: a span of `depth` means "at least depth".

Sorting is numpy prefix doubling (one sort of packed 64-bit keys per round), one chunk of at
most `chunk_tokens` positions at a time, so memory is bounded whatever the corpus size; a chunk's
suffixes read up to `depth` tokens past its end, so they compare as in the whole corpus, but each
position is in one chunk. Each chunk's array is a .npy file, written atomically and memory-mapped
for queries, in a cache directory keyed on the corpus (length, dtype, content hash; for a large
memory-mapped file a sample's hash plus the file's size and mtime), depth, chunk size and
end-of-text id, with a JSON manifest written last. A query is one batched binary search of all
its positions per chunk, within the suffixes that start with the same token, comparing 8 tokens
per gather from where the search's two bounds agree.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tinygpt.fileio import atomic_write, write_json

FORMAT, VERSION = "tinygpt-novelty-index", 1
DEFAULT_DEPTH = 64
# 16.7M positions: ~0.8 GB of work arrays per sorting process; past this the sort's random
# gathers slow down per token (cache and TLB misses), while smaller chunks mean more searches.
DEFAULT_CHUNK_TOKENS = 1 << 24
MANIFEST = "manifest.json"
MATCHES_DTYPE = np.dtype([("length", np.int32), ("corpus_start", np.int64)])
_CORPUS_END, _QUERY_END = -1, -2  # past the corpus's end, past a query's end: never equal
_WIDTH = 8  # tokens compared per gather: most comparisons differ at their first token
_QUERY_BLOCK = 1 << 16  # query positions searched together (bounds the search's memory)
_SCAN_BLOCK = 1 << 24
_FULL_HASH_BYTES = 256 << 20  # memory-mapped corpora larger than this are keyed on file + sample
_MAX_BUCKETS = 1 << 20  # a first-token table per chunk while ids are below this
_POOL_TOKENS = 1 << 22  # smaller corpora are sorted in this process


@dataclass(frozen=True)
class Match:
    """The longest span a query shares with the corpus: `length` tokens (at most the index's
    depth) from `query_start` in the query and `corpus_start` in the corpus (-1 when none)."""

    length: int
    query_start: int
    corpus_start: int


# ----------------------------------------------------------------------------- input checks

def _corpus(tokens) -> np.ndarray:
    """The corpus as 1-D uint8/16/32 (other integer arrays: checked, then copied)."""
    arr = np.asarray(tokens)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"the corpus must be a 1-D array of token ids, got shape {arr.shape}" if arr.ndim != 1
                         else "empty corpus: there are no tokens to index")
    if arr.dtype.kind == "u" and arr.dtype.itemsize <= 4:
        return arr
    if arr.dtype.kind not in "iu":
        raise ValueError(f"the corpus must hold integer token ids, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= 1 << 32:
        raise ValueError(f"corpus token ids must be in 0..2**32-1, found {lo}..{hi}")
    return arr.astype(np.uint16 if hi < 1 << 16 else np.uint32)


def _positive_int(name: str, value, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= most:
        raise ValueError(f"{name} must be an integer in 1..{most}, got {value!r}")
    return int(value)


def _query(ids, dtype: np.dtype) -> np.ndarray:
    """A query as int64 ids, each a valid id of the corpus's dtype."""
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(f"a query must be a flat sequence of integer token ids, got {arr.dtype} shape {arr.shape}")
    lo, hi, top = int(arr.min()), int(arr.max()), int(np.iinfo(dtype).max)
    if lo < 0 or hi > top:
        raise ValueError(f"query token ids must be in 0..{top} (the corpus is {dtype}), found {lo}..{hi}")
    return arr.astype(np.int64)


def _release(tokens) -> None:
    """Unmaps a read-only memmap's pages (the page cache keeps them), out of resident memory."""
    mm = getattr(tokens, "_mmap", None)
    if mm is not None and getattr(tokens, "mode", None) == "r" and hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_DONTNEED)


# ------------------------------------------------------------------------------- cache keys

def corpus_fingerprint(tokens) -> dict:
    """What identifies a corpus for the cache: length, dtype and a content hash (of all of it; for
    a large memory-mapped file, of a sample, with the file's path, size and mtime)."""
    arr, filename = np.asarray(tokens), getattr(tokens, "filename", None)
    fp, h = {"tokens": int(arr.size), "dtype": arr.dtype.name}, hashlib.sha1()
    sampled = bool(filename) and arr.nbytes > _FULL_HASH_BYTES
    if sampled:
        st = os.stat(filename)
        fp["file"] = {"path": os.path.realpath(filename), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    block = 1 << 14 if sampled else _SCAN_BLOCK
    for start in np.linspace(0, arr.size - block, 257).astype(np.int64) if sampled else range(0, arr.size, block):
        h.update(np.ascontiguousarray(arr[start:start + block]).tobytes())
    _release(tokens)
    fp["sample_sha1" if sampled else "sha1"] = h.hexdigest()
    return fp


def _settings(fp: dict, depth: int, chunk_tokens: int, eot: int | None) -> tuple[dict, str]:
    """What the index depends on, and the cache subdirectory named after it."""
    settings = {"format": FORMAT, "version": VERSION, "corpus": fp, "depth": depth,
                "chunk_tokens": chunk_tokens, "eot": eot}
    return settings, hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


# --------------------------------------------------------- suffix sorting of one chunk window

def _dense_ranks(window: np.ndarray) -> tuple[np.ndarray, int]:
    """Each token as its rank 1..V among the ids present (few bits per packed token); 0: past the end."""
    if window.dtype.itemsize <= 2:
        present = np.zeros(1 << (8 * window.dtype.itemsize), bool)
        present[window] = True
        lut = np.cumsum(present, dtype=np.uint32)
        return lut[window], int(lut[-1])
    uniq, inverse = np.unique(window, return_inverse=True)
    return (inverse.reshape(-1) + 1).astype(np.uint32), len(uniq)


def _group_ids(differs: np.ndarray) -> np.ndarray:
    gid = np.zeros(len(differs) + 1, np.uint32)
    np.cumsum(differs, dtype=np.uint32, out=gid[1:])
    return gid


def _sort_tagged(key: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorts uint64 `key` (values below 2**(64-index_bits)) with each entry's index in its low
    bits (np.sort is much faster than argsort): the indices in order and the sorted keys."""
    key <<= np.uint64(index_bits)
    key |= np.arange(len(key), dtype=np.uint64)
    key.sort()
    index = (key & np.uint64((1 << index_bits) - 1)).view(np.int64)
    key >>= np.uint64(index_bits)
    return index, key


def _initial_order(window: np.ndarray, depth: int, index_bits: int):
    """Positions sorted by their first k tokens, packed into one key (k as many as fit)."""
    ranks, vocab = _dense_ranks(window)
    bits, n = vocab.bit_length(), len(window)
    k = max(1, min(depth, (64 - index_bits) // bits))
    key = np.zeros(n, np.uint64)
    for i in range(k):  # most significant token first; 0 past the end
        key <<= np.uint64(bits)
        key[: max(n - i, 0)] |= ranks[min(i, n):]
    del ranks
    order, key = _sort_tagged(key, index_bits)
    return order, _group_ids(key[1:] != key[:-1]), k


def _refine(order: np.ndarray, gid: np.ndarray, shift: int, index_bits: int):
    """One doubling round: from the order of h-prefixes to that of (h+shift)-prefixes
    (shift <= h), sorting by (rank of the h-prefix at p, rank of the h-prefix at p + shift)."""
    n = len(order)
    rank = np.empty(n, np.uint32)
    rank[order] = gid  # the group of each position
    # Positions in the order of their second half: those whose second half starts past the end
    # first (lowest), then q - shift for each q in the current order (so no second sort key).
    later = order >= shift
    by_second = np.empty(n, np.int64)
    by_second[:shift] = np.arange(n - shift, n)
    np.subtract(order[later], shift, out=by_second[shift:])
    tagged = np.zeros(n, np.uint64)  # second-half rank + 1 (0 past the end) << 32 | position
    tagged[shift:] = gid[later] + np.uint32(1)
    tagged <<= np.uint64(32)
    tagged |= by_second.view(np.uint64)
    key = np.take(rank, by_second).astype(np.uint64)
    del rank, by_second
    j, key = _sort_tagged(key, index_bits)
    moved = np.take(tagged, j)  # one gather brings both the position and its second-half rank
    del tagged, j
    new_order = (moved & np.uint64(0xFFFFFFFF)).view(np.int64)
    moved >>= np.uint64(32)
    return new_order, _group_ids((key[1:] != key[:-1]) | (moved[1:] != moved[:-1]))


def sort_window(window: np.ndarray, depth: int) -> np.ndarray:
    """The positions of `window` (int64) sorted by their first `depth` tokens (the end sorts
    lowest); ties in any order."""
    n = len(window)
    index_bits = max(1, (n - 1).bit_length())
    order, gid, h = _initial_order(window, depth, index_bits)
    while h < depth and int(gid[-1]) + 1 < n:  # stop early once all prefixes differ
        shift = min(h, depth - h)  # two h-prefixes overlapping cover h + shift tokens
        order, gid = _refine(order, gid, shift, index_bits)
        h += shift
    return order


# ------------------------------------------------------------------------------ the build

def _save(path: str, arr: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:  # a temporary name beside `path`, then renamed
        np.save(f, arr)


def _scan(arr: np.ndarray, tokens, eot: int | None) -> tuple[int, np.ndarray | None]:
    """The largest id and the positions of the end-of-text tokens."""
    top, ends = 0, []
    for start in range(0, arr.size, _SCAN_BLOCK):
        block = np.asarray(arr[start:start + _SCAN_BLOCK])
        top = max(top, int(block.max()))
        if eot is not None:
            ends.append(np.flatnonzero(block == eot) + start)
        _release(tokens)
    return top, (np.concatenate(ends).astype(np.int64) if eot is not None else None)


def _sort_chunk(window, start: int, length: int, depth: int, vocab, paths, sa_dtype) -> int:
    """Sorts a chunk's `length` positions (`window` runs `depth` tokens on) into its files."""
    order = sort_window(window, depth)
    sa = order[order < length] + start
    if vocab is not None:  # where each first token's run of suffixes begins, for the search
        _save(paths[1], np.concatenate([[0], np.cumsum(np.bincount(window[:length], minlength=vocab))]))
    _save(paths[0], sa.astype(sa_dtype))  # last: marks the chunk done
    return length


def _chunk_done(directory: str, c: dict, dtype) -> bool:
    try:
        sa = np.load(os.path.join(directory, c["sa"]), mmap_mode="r")
    except (OSError, ValueError):
        return False
    return (sa.shape == (c["stop"] - c["start"],) and sa.dtype == dtype
            and (c["first"] is None or os.path.isfile(os.path.join(directory, c["first"]))))


def _manifest(settings, arr, vocab) -> dict:
    n, depth, step = int(arr.size), settings["depth"], settings["chunk_tokens"]
    chunks = [{"start": s, "stop": min(s + step, n), "sa": f"sa-{i:05d}.npy",
               "first": f"first-{i:05d}.npy" if vocab is not None else None}
              for i, s in enumerate(range(0, n, step))]
    return {**settings, "tokens": n, "token_dtype": arr.dtype.name, "vocab": vocab,
            "sa_dtype": "uint32" if n + depth < 1 << 32 else "int64",
            "stories": "stories.npy" if settings["eot"] is not None else None, "chunks": chunks}


def _jobs(arr, tokens, man: dict, directory: str, todo: list[dict]):
    """`_sort_chunk`'s arguments per chunk, each window read only when asked for."""
    for c in todo:
        window = np.array(arr[c["start"]:min(c["stop"] + man["depth"], arr.size)])
        _release(tokens)
        paths = [os.path.join(directory, c[k]) if c[k] else None for k in ("sa", "first")]
        yield window, c["start"], c["stop"] - c["start"], man["depth"], man["vocab"], paths, man["sa_dtype"]


def _run(jobs, workers: int, bar) -> None:
    """Runs the chunk sorts in this process, or in `workers` processes (numpy's sort holds the
    GIL, so threads would not help) with at most `workers` windows in flight. Forked where the
    platform can: a spawned one would re-run the caller's main script if it lacks a main guard."""
    if workers == 1:
        for job in jobs:
            bar.update(_sort_chunk(*job))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pending: set = set()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        for job in jobs:
            if len(pending) >= workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                bar.update(sum(f.result() for f in done))
            pending.add(pool.submit(_sort_chunk, *job))
        bar.update(sum(f.result() for f in wait(pending).done))


def _build(arr, tokens, directory, settings, workers, progress) -> dict:
    from tqdm import tqdm

    top, ends = _scan(arr, tokens, settings["eot"])
    man = _manifest(settings, arr, top + 1 if top < _MAX_BUCKETS else None)
    if ends is not None:
        _save(os.path.join(directory, man["stories"]), ends)
    sa_dtype = np.dtype(man["sa_dtype"])
    todo = [c for c in man["chunks"] if not _chunk_done(directory, c, sa_dtype)]  # keeps a killed build's
    if len(todo) < 2 or arr.size < _POOL_TOKENS:
        workers = 1  # starting processes costs more than it saves
    with tqdm(total=man["tokens"], initial=man["tokens"] - sum(c["stop"] - c["start"] for c in todo),
              unit="tok", unit_scale=True, desc="novelty index", disable=not progress) as bar:
        _run(_jobs(arr, tokens, man, directory, todo), workers, bar)
    write_json(os.path.join(directory, MANIFEST), man, indent=1)  # last: the index is complete
    return man


def _read_manifest(directory: str, settings: dict) -> dict | None:
    """The manifest of a complete index built with `settings`, else None (build it again)."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    ok = isinstance(man, dict) and all(man.get(k) == v for k, v in settings.items())
    return man if ok and all(_chunk_done(directory, c, np.dtype(man["sa_dtype"])) for c in man["chunks"]) else None


# ------------------------------------------------------------------------------ the search

def _first_difference(corpus, depth: int, buf, qat, spos, agreed):
    """Corpus suffixes at `spos` against query windows at `qat`, known to agree on `agreed`
    tokens: their common prefix (at most depth), and whether the suffix sorts below the query."""
    lcp, below = np.full(len(spos), depth, np.int32), np.zeros(len(spos), bool)
    todo, off, s, qa = np.arange(len(spos)), agreed.astype(np.int64), spos, qat
    while todo.size:
        o = off[:, None] + np.arange(_WIDTH)
        inside = o < depth if off.max() + _WIDTH > depth else None  # None: all inside
        at = s[:, None] + (o if inside is None else np.minimum(o, depth - 1, out=o))
        if s.max() + depth > len(corpus):  # only suffixes near the corpus's end read past it
            c = np.take(corpus, np.minimum(at, len(corpus) - 1)).astype(buf.dtype)
            c[at >= len(corpus)] = _CORPUS_END
        else:
            c = np.take(corpus, at)
        q = np.take(buf, qa[:, None] + o)
        diff = c != q if inside is None else (c != q) & inside
        rows, col = np.arange(len(todo)), diff.argmax(axis=1)
        hit = diff[rows, col]
        lcp[todo[hit]] = (off + col)[hit]
        below[todo[hit]] = (c[rows, col] < q[rows, col])[hit]
        more = ~hit & (off + _WIDTH < depth)
        todo, off, s, qa = todo[more], off[more] + _WIDTH, s[more], qa[more]
    return lcp, below


def _search_chunk(sa, first, corpus, depth: int, buf, qat):
    """Binary search of every lane in one chunk at once; returns the longest common prefix with
    the chunk's suffixes and a corpus position holding it (-1 when 0). The best suffix is next to
    the insertion point, whose neighbours' common prefixes the search keeps (llcp, rlcp); every
    suffix between the bounds shares min(llcp, rlcp) tokens, so comparisons start there."""
    length, where = np.zeros(len(qat), np.int32), np.full(len(qat), -1, np.int64)
    state = np.zeros((6, len(qat)), np.int64)  # per lane: lo, hi, llcp, rlcp, lpos, rpos
    state[1], state[4:] = len(sa), -1
    if first is not None:  # start within the run of suffixes beginning with the same token
        head = np.take(buf, qat)
        inside = head < len(first) - 1
        head = np.where(inside, head, 0)
        state[0], state[1] = np.where(inside, first[head], 0), np.where(inside, first[head + 1], 0)
    ids, qa = np.arange(len(qat)), qat
    while ids.size:
        if not (going := state[0] < state[1]).all():  # finished lanes leave the search
            lo, hi, llcp, rlcp, lpos, rpos = state[:, ~going]
            length[ids[~going]] = np.maximum(llcp, rlcp)
            where[ids[~going]] = np.where(llcp >= rlcp, lpos, rpos)
            state, ids, qa = state[:, going], ids[going], qa[going]
            continue
        lo, hi, llcp, rlcp, lpos, rpos = state
        mid = (lo + hi) // 2
        spos = np.take(sa, mid).astype(np.int64)
        lcp, below = _first_difference(corpus, depth, buf, qa, spos, np.minimum(llcp, rlcp))
        state = np.where(below, [mid + 1, hi, lcp, rlcp, spos, rpos], [lo, mid, llcp, lcp, lpos, spos])
    return length, np.where(length > 0, where, -1)


def _search(chunks, corpus, depth: int, buf, at) -> np.ndarray:
    """The best match over all chunks of every query position, in blocks (bounded memory)."""
    out = np.zeros(len(at), MATCHES_DTYPE)
    for b in range(0, len(at), _QUERY_BLOCK):
        qat = at[b:b + _QUERY_BLOCK]
        best, where = np.zeros(len(qat), np.int32), np.full(len(qat), -1, np.int64)
        for sa, first in chunks:
            length, pos = _search_chunk(sa, first, corpus, depth, buf, qat)
            better = length > best  # ties keep the earlier chunk's position
            best[better], where[better] = length[better], pos[better]
        out["length"][b:b + len(qat)], out["corpus_start"][b:b + len(qat)] = best, where
    return out


def _ngram_precision(query: list[int], story: list[int], n: int) -> float:
    """Share of the query's n-grams (n capped at the query's length) found in the story."""
    n = min(n, len(query))
    grams = list(zip(*(query[k:] for k in range(n))))
    have = set(zip(*(story[k:] for k in range(n))))
    return sum(g in have for g in grams) / len(grams)


# ------------------------------------------------------------------------------ the index

class NoveltyIndex:
    """A suffix array over a token corpus in memory-mapped chunk files; see `build`."""

    def __init__(self, tokens, directory: str, manifest: dict):
        self.tokens, self.directory, self.manifest = np.asarray(tokens), directory, manifest
        self.depth, self.eot, self.dtype = manifest["depth"], manifest["eot"], np.dtype(manifest["token_dtype"])
        self._cmp = np.int32 if self.dtype.itemsize <= 2 else np.int64

        def load(name, **kw):
            return np.asarray(np.load(os.path.join(directory, name), **kw)) if name else None

        self.chunks = [(load(c["sa"], mmap_mode="r"), load(c["first"])) for c in manifest["chunks"]]
        self.story_ends = load(manifest["stories"])  # positions of the end-of-text tokens

    @classmethod
    def build(cls, tokens, cache_dir, *, depth: int = DEFAULT_DEPTH, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
              eot: int | None = None, workers: int | None = None, progress: bool = False) -> "NoveltyIndex":
        """The index of `tokens` (a 1-D integer array or memmap), from `cache_dir` when an index
        of the same corpus and settings is there, else built there (chunks a killed build had
        finished are kept). `eot` (the end-of-text id) is needed by `closest_story_overlap`.
        `workers` processes (default: up to 2) sort chunks at once, each with ~0.8 GB of work
        arrays at the default chunk size."""
        arr, depth = _corpus(tokens), _positive_int("depth", depth, 1 << 16)
        chunk_tokens = _positive_int("chunk_tokens", chunk_tokens, 1 << 31)
        workers = _positive_int("workers", workers or min(2, os.cpu_count() or 1), 256)
        if eot is not None and not (isinstance(eot, (int, np.integer)) and 0 <= eot <= np.iinfo(arr.dtype).max):
            raise ValueError(f"eot must be a token id of the corpus's dtype {arr.dtype}, got {eot!r}")
        eot = None if eot is None else int(eot)
        source = tokens if arr.dtype == np.asarray(tokens).dtype else arr  # a memmap stays one
        settings, key = _settings(corpus_fingerprint(source), depth, chunk_tokens, eot)
        directory = os.path.join(os.fspath(cache_dir), key)
        os.makedirs(directory, exist_ok=True)
        manifest = _read_manifest(directory, settings) or _build(arr, source, directory, settings, workers, progress)
        return cls(arr, directory, manifest)

    @classmethod
    def for_shards(cls, shard_dir, cache_dir=None, *, split: str = "train", **build_kw) -> "NoveltyIndex":
        """The index of a prepared shard directory's `split` tokens, cached by default in
        `<shard_dir>/novelty-index/`; the shards' end-of-text token marks the stories."""
        from tinygpt.data.shards import open_shards

        shards = open_shards(shard_dir)
        cache_dir = os.path.join(os.fspath(shard_dir), "novelty-index") if cache_dir is None else cache_dir
        return cls.build(shards.tokens(split), cache_dir, eot=shards.eot_token, **build_kw)

    @property
    def nbytes(self) -> int:
        """The index's size on disk."""
        return sum(e.stat().st_size for e in os.scandir(self.directory) if e.is_file())

    def longest_matches_many(self, queries: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """`longest_matches` of each query, all searched in one batch."""
        qs = [_query(q, self.dtype) for q in queries]
        pad = np.full(self.depth, _QUERY_END, self._cmp)  # so no window reads past its query's end
        buf = np.concatenate([p for q in qs for p in (q.astype(self._cmp), pad)] or [pad[:0]])
        starts = np.cumsum([0] + [len(q) + self.depth for q in qs[:-1]])  # each query's place in buf
        at = np.concatenate([s + np.arange(len(q)) for s, q in zip(starts, qs)] or [np.zeros(0, np.int64)])
        out = _search(self.chunks, self.tokens, self.depth, buf, at)
        return np.split(out, np.cumsum([len(q) for q in qs])[:-1]) if qs else []

    def longest_matches(self, query_ids: Sequence[int]) -> np.ndarray:
        """For each position i of the query, a record of MATCHES_DTYPE: `length`, that of the
        longest prefix of query[i:] found in the corpus (at most `depth`), and `corpus_start`, a
        corpus position where it is (-1 when the length is 0)."""
        return self.longest_matches_many([query_ids])[0]

    def longest_spans(self, queries: Sequence[Sequence[int]]) -> list[Match]:
        """`longest_span` of each query, all searched in one batch."""
        return [Match(int(m["length"][i]), i, int(m["corpus_start"][i])) if len(m) else Match(0, 0, -1)
                for m in self.longest_matches_many(queries) for i in [int(np.argmax(m["length"])) if len(m) else 0]]

    def longest_span(self, query_ids: Sequence[int]) -> Match:
        """The longest span the query shares with the corpus (the first, if several)."""
        return self.longest_spans([query_ids])[0]

    def story_bounds(self, position: int) -> tuple[int, int]:
        """The corpus range [start, stop) of the story around `position`: between end-of-text
        tokens (the one at stop excluded)."""
        if self.story_ends is None:
            raise ValueError("this index was built without an end-of-text token (eot): it knows no stories")
        if not 0 <= position < len(self.tokens):
            raise ValueError(f"position {position} is outside the corpus (0..{len(self.tokens) - 1})")
        i = int(np.searchsorted(self.story_ends, position, side="left"))
        stop = int(self.story_ends[i]) if i < len(self.story_ends) else len(self.tokens)
        return (int(self.story_ends[i - 1]) + 1 if i > 0 else 0), stop

    def closest_story_overlap(self, query_ids: Sequence[int], match: Match, n: int = 4,
                              max_story_tokens: int = 1 << 16) -> float:
        """The share of the query's token n-grams found in its closest training story: the one
        holding the middle of `match` (the query's longest span). At most `max_story_tokens` on
        each side of it are read."""
        q, n = _query(query_ids, self.dtype).tolist(), _positive_int("n", n, 1 << 16)
        if not q or match.length <= 0:
            return 0.0  # no token of the query is in the corpus
        if not 0 <= match.corpus_start <= len(self.tokens) - match.length:
            raise ValueError(f"{match} does not lie inside the corpus of {len(self.tokens)} tokens")
        middle = match.corpus_start + (match.length - 1) // 2
        start, stop = self.story_bounds(middle)
        start, stop = max(start, middle - max_story_tokens), min(stop, middle + max_story_tokens)
        return _ngram_precision(q, np.asarray(self.tokens[start:stop]).tolist(), n)
