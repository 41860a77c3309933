"""The novelty index finds what a story copies from the training data: `longest_matches` equals a
brute-force search on random small corpora (chunk boundaries and depth caps included), real
TinyStories stories copied from the indexed set score the full depth and overlap 1 while held-out
ones share only short spans, a pasted passage is found, the cache is reused and invalidated as it
should be, and bad input is refused."""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygpt.grade import novelty
from tinygpt.grade.novelty import Match, NoveltyIndex

DEPTH = 64


def brute_lengths(corpus: list[int], query: list[int], depth: int) -> list[int]:
    """For each query position, the longest prefix of query[i:] in the corpus (at most depth)."""
    out = []
    for i in range(len(query)):
        best = 0
        for p in range(len(corpus)):
            n = 0
            while n < depth and i + n < len(query) and p + n < len(corpus) and corpus[p + n] == query[i + n]:
                n += 1
            best = max(best, n)
        out.append(best)
    return out


def assert_positions_hold(corpus, query, matches) -> None:
    for i, (n, at) in enumerate(zip(matches["length"].tolist(), matches["corpus_start"].tolist())):
        if n == 0:
            assert at == -1
        else:
            assert list(corpus[at:at + n]) == list(query[i:i + n]), (i, n, at)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=st.lists(st.integers(0, 5), min_size=1, max_size=70),
       queries=st.lists(st.lists(st.integers(0, 6), max_size=20), min_size=1, max_size=4),
       depth=st.integers(1, 8), chunk=st.integers(1, 12), dtype=st.sampled_from(["uint8", "uint16", "uint32"]))
def test_longest_matches_equal_a_brute_force_search(corpus, queries, depth, chunk, dtype):
    if dtype == "uint32":  # ids far apart near the top of the range
        corpus, queries = [t * 700_000_000 for t in corpus], [[t * 700_000_000 for t in q] for q in queries]
    arr = np.array(corpus, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        index = NoveltyIndex.build(arr, tmp, depth=depth, chunk_tokens=chunk, eot=0)
        got = index.longest_matches_many(queries)
        for q, m in zip(queries, got):
            assert m["length"].tolist() == brute_lengths(corpus, q, depth), (corpus, q, depth, chunk)
            assert_positions_hold(corpus, q, m)
        assert index.longest_matches(queries[0]).tolist() == got[0].tolist()
        span = index.longest_span(queries[0])
        lengths = got[0]["length"].tolist()
        assert span.length == max(lengths, default=0)
        if lengths:
            assert span.query_start == lengths.index(span.length)


def test_a_repetitive_corpus_reports_at_least_depth():
    corpus = np.array([1, 2] * 500, np.uint16)  # every suffix ties with hundreds of others
    with tempfile.TemporaryDirectory() as tmp:
        index = NoveltyIndex.build(corpus, tmp, depth=16, chunk_tokens=97)
        m = index.longest_matches([1, 2] * 20 + [3])
        assert m["length"].tolist() == [16] * 25 + list(range(15, 0, -1)) + [0]
        assert_positions_hold(corpus, [1, 2] * 20 + [3], m)
        span = index.longest_span([2, 1, 2, 3])
        assert (span.length, span.query_start) == (3, 0) and corpus[span.corpus_start] == 2


def test_a_list_or_signed_corpus_is_converted(tmp_path):
    corpus = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    a = NoveltyIndex.build(corpus, tmp_path, depth=4)
    b = NoveltyIndex.build(np.array(corpus, np.int64), tmp_path, depth=4)
    c = NoveltyIndex.build(np.array(corpus, np.uint16), tmp_path, depth=4)
    assert a.dtype == b.dtype == c.dtype == np.uint16 and a.directory == b.directory == c.directory
    m = a.longest_matches([1, 5, 9, 2, 7])
    assert m.dtype == novelty.MATCHES_DTYPE and m["length"].tolist() == [4, 3, 2, 1, 0]
    assert m["corpus_start"].tolist() == [3, 4, 5, 6, -1]


# ------------------------------------------------------------------ real TinyStories stories

@pytest.fixture(scope="module")
def shards(sample_path, tmp_path_factory):
    """The TinyStories sample, prepared: a 2048-token vocabulary, 90% train / 10% held out."""
    from tinygpt.data.prepare import prepare
    from tinygpt.data.shards import open_shards

    out = tmp_path_factory.mktemp("novelty") / "shards"
    prepare([sample_path], str(out), vocab_size=2048, val_fraction=0.1, progress=False)
    return open_shards(str(out))


def stories_of(tokens: np.ndarray, eot: int) -> list[list[int]]:
    ends = np.flatnonzero(tokens == eot)
    return [s.tolist() for s in np.split(np.asarray(tokens), ends + 1) if len(s) > 1]


@pytest.fixture(scope="module")
def real(shards):
    index = NoveltyIndex.for_shards(shards.path)
    train = [s[:-1] for s in stories_of(shards.tokens("train"), shards.eot_token)]
    held = [s[:-1] for s in stories_of(shards.tokens("val"), shards.eot_token)]
    return index, train, held


def lexicographic_le(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a != b
    col = diff.argmax(axis=1)
    rows = np.arange(len(a))
    return ~diff.any(axis=1) | (a[rows, col] < b[rows, col])


def test_chunks_hold_their_positions_sorted_by_their_first_depth_tokens(shards, tmp_path):
    tokens = np.asarray(shards.tokens("train"))
    index = NoveltyIndex.build(tokens, tmp_path, depth=DEPTH, chunk_tokens=100_000)
    padded = np.concatenate([tokens.astype(np.int64), np.full(DEPTH, -1)])
    assert len(index.chunks) == 5
    for c, (sa, first) in zip(index.manifest["chunks"], index.chunks):
        assert np.array_equal(np.sort(sa), np.arange(c["start"], c["stop"]))
        windows = padded[sa.astype(np.int64)[:, None] + np.arange(DEPTH)]  # reads past the chunk's end
        assert lexicographic_le(windows[:-1], windows[1:]).all()
        assert np.array_equal(first, np.searchsorted(tokens[sa], np.arange(len(first))))  # first-token runs


def test_the_default_cache_is_in_the_shard_directory(real, shards):
    index, _, _ = real
    assert os.path.dirname(index.directory) == os.path.join(shards.path, "novelty-index")
    assert index.eot == shards.eot_token and len(index.tokens) == shards.meta["splits"]["train"]["tokens"]


def test_copied_stories_score_full_depth_and_held_out_ones_short_spans(real):
    index, train, held = real
    copied, novel = train[::20][:100], held[:100]
    c_spans, h_spans = index.longest_spans(copied), index.longest_spans(novel)
    c_over = [index.closest_story_overlap(q, m) for q, m in zip(copied, c_spans)]
    h_over = [index.closest_story_overlap(q, m) for q, m in zip(novel, h_spans)]
    h_len = [m.length for m in h_spans]
    print(f"\ncopied: spans min {min(m.length for m in c_spans)}, overlap mean {statistics.mean(c_over):.3f} "
          f"min {min(c_over):.3f}; held out: span median {statistics.median(h_len)} max {max(h_len)} "
          f"(depth {DEPTH}), overlap mean {statistics.mean(h_over):.3f} max {max(h_over):.3f}")
    assert all(m.length == min(DEPTH, len(q)) for q, m in zip(copied, c_spans))
    assert statistics.median(c_over) == 1.0 and statistics.mean(c_over) > 0.97
    assert statistics.median(h_len) < DEPTH / 4
    assert statistics.mean(h_over) < 0.5 * statistics.mean(c_over)
    for q, m in zip(novel[:20], h_spans[:20]):
        assert list(index.tokens[m.corpus_start:m.corpus_start + m.length]) == q[m.query_start:m.query_start + m.length]


def test_a_pasted_passage_is_found(real):
    index, train, held = real
    rng = random.Random(0)
    queries, passages = [], []
    for story in [s for s in held if len(s) > 80][:40]:
        source = rng.choice([s for s in train if len(s) > 60])
        at = rng.randrange(len(source) - 30)
        passage = source[at:at + 30]
        half = len(story) // 2
        queries.append(story[:half] + passage + story[half:])
        passages.append(half)
    spans = index.longest_spans(queries)
    print("\npasted 30 tokens: spans", sorted(m.length for m in spans)[:5], "...")
    for q, half, m in zip(queries, passages, spans):
        assert m.length >= 30
        assert list(index.tokens[m.corpus_start:m.corpus_start + m.length]) == q[m.query_start:m.query_start + m.length]
        assert 0 < index.closest_story_overlap(q, m) < 1
    matches = index.longest_matches(queries[0])
    assert matches["length"][passages[0]] >= 30
    assert_positions_hold(index.tokens, queries[0], matches)


def test_grading_500_completions_is_fast(shards, tmp_path):
    """Build (empty cache) plus longest spans and overlaps of 500 completions of 200 tokens,
    against the ~500k-token training split: well under 10 s."""
    held = np.asarray(shards.tokens("val")).tolist()
    rng = random.Random(1)
    completions = [held[(at := rng.randrange(len(held) - 200)):at + 200] for _ in range(500)]
    t0 = time.perf_counter()
    index = NoveltyIndex.build(shards.tokens("train"), tmp_path, eot=shards.eot_token)
    built = time.perf_counter() - t0
    spans = index.longest_spans(completions)
    overlaps = [index.closest_story_overlap(q, m) for q, m in zip(completions, spans)]
    total = time.perf_counter() - t0
    print(f"\n{len(index.tokens):,} tokens: build {built:.2f} s, build + 500 queries {total:.2f} s")
    assert len(overlaps) == 500 and total < 10


# ------------------------------------------------------------------------------- the cache

def files_and_times(directory) -> dict[str, int]:
    return {e.name: e.stat().st_mtime_ns for e in os.scandir(directory)}


def test_a_second_build_reuses_the_cache(tmp_path, monkeypatch):
    corpus = np.random.default_rng(0).integers(0, 50, 5000).astype(np.uint16)
    first = NoveltyIndex.build(corpus, tmp_path, depth=16, chunk_tokens=1000, eot=0)
    before = files_and_times(first.directory)
    assert sum(n.startswith("sa-") for n in before) == 5 and "manifest.json" in before
    monkeypatch.setattr(novelty, "_build", lambda *a, **k: pytest.fail("rebuilt a cached index"))
    again = NoveltyIndex.build(corpus.copy(), tmp_path, depth=16, chunk_tokens=1000, eot=0)
    assert again.directory == first.directory and files_and_times(again.directory) == before
    q = corpus[1234:1300].tolist()
    assert again.longest_matches(q).tolist() == first.longest_matches(q).tolist()


def test_a_changed_corpus_or_setting_builds_anew(tmp_path):
    corpus = np.random.default_rng(0).integers(0, 50, 5000).astype(np.uint16)
    first = NoveltyIndex.build(corpus, tmp_path, depth=16, chunk_tokens=1000)
    changed = corpus.copy()
    changed[2500:2520] = 50  # one 20-token run no query of the old corpus can match
    second = NoveltyIndex.build(changed, tmp_path, depth=16, chunk_tokens=1000)
    assert second.directory != first.directory
    assert first.longest_span([50] * 20).length == 0 and second.longest_span([50] * 20).length == 16
    other_depth = NoveltyIndex.build(corpus, tmp_path, depth=8, chunk_tokens=1000)
    assert other_depth.directory not in (first.directory, second.directory)


def test_a_rewritten_corpus_file_builds_anew(tmp_path):
    path = tmp_path / "train.bin"
    np.arange(3000, dtype=np.uint16).tofile(path)
    first = NoveltyIndex.build(np.memmap(path, np.uint16, mode="r"), tmp_path / "cache", depth=8)
    np.arange(3000, dtype=np.uint16)[::-1].copy().tofile(path)
    second = NoveltyIndex.build(np.memmap(path, np.uint16, mode="r"), tmp_path / "cache", depth=8)
    assert second.directory != first.directory
    assert second.longest_span([5, 4, 3]).length == 3 and second.longest_span([3, 4, 5]).length == 1


def test_an_interrupted_build_keeps_its_finished_chunks(tmp_path):
    corpus = np.random.default_rng(2).integers(0, 50, 5000).astype(np.uint16)
    index = NoveltyIndex.build(corpus, tmp_path, depth=16, chunk_tokens=1000)
    before = files_and_times(index.directory)
    os.remove(os.path.join(index.directory, "manifest.json"))  # as if killed while sorting chunk 3
    os.remove(os.path.join(index.directory, "sa-00003.npy"))
    again = NoveltyIndex.build(corpus, tmp_path, depth=16, chunk_tokens=1000)
    after = files_and_times(again.directory)
    assert {n for n in before if after[n] != before[n]} == {"manifest.json", "sa-00003.npy", "first-00003.npy"}
    q = corpus[3100:3200].tolist()
    assert again.longest_span(q).length == 16


def test_worker_processes_build_the_same_index(tmp_path, monkeypatch):
    monkeypatch.setattr(novelty, "_POOL_TOKENS", 0)  # the process pool, even for a small corpus
    corpus = np.random.default_rng(3).integers(0, 8, 6000).astype(np.uint16)
    one = NoveltyIndex.build(corpus, tmp_path / "one", depth=12, chunk_tokens=1000, workers=1)
    two = NoveltyIndex.build(corpus, tmp_path / "two", depth=12, chunk_tokens=1000, workers=2)
    for (a, _), (b, _) in zip(one.chunks, two.chunks):
        assert np.array_equal(np.sort(a), np.sort(b))
    q = np.random.default_rng(4).integers(0, 8, 300).tolist()
    assert one.longest_matches(q)["length"].tolist() == two.longest_matches(q)["length"].tolist()


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("tokens, kw, message", [
    (np.zeros(0, np.uint16), {}, "empty corpus"),
    ([], {}, "empty corpus"),
    (np.array([1.0, 2.0]), {}, "integer token ids"),
    (np.array([[1, 2], [3, 4]]), {}, "1-D"),
    (np.array([-1, 2]), {}, "0..2\\*\\*32-1"),
    (np.array([1, 2], np.uint16), {"depth": 0}, "depth must be"),
    (np.array([1, 2], np.uint16), {"depth": True}, "depth must be"),
    (np.array([1, 2], np.uint16), {"depth": 2.0}, "depth must be"),
    (np.array([1, 2], np.uint16), {"chunk_tokens": 0}, "chunk_tokens must be"),
    (np.array([1, 2], np.uint16), {"eot": 70000}, "eot must be"),
    (np.array([1, 2], np.uint16), {"eot": -1}, "eot must be"),
])
def test_bad_corpus_or_settings_are_refused(tmp_path, tokens, kw, message):
    with pytest.raises(ValueError, match=message):
        NoveltyIndex.build(tokens, tmp_path, **kw)


@pytest.mark.parametrize("query, message", [
    ([1, -1], "must be in 0..65535"),
    ([70000], "must be in 0..65535"),
    ([1.5, 2.0], "integer token ids"),
    ([[1, 2], [3, 4]], "flat sequence"),
    ([10**30], "integer token ids"),
])
def test_bad_queries_are_refused(tmp_path, query, message):
    index = NoveltyIndex.build(np.array([1, 2, 3, 0, 1, 2], np.uint16), tmp_path, eot=0)
    with pytest.raises(ValueError, match=message):
        index.longest_matches(query)
    with pytest.raises(ValueError, match=message):
        index.longest_spans([[1, 2], query])


def test_overlap_edge_cases(tmp_path):
    corpus = np.array([1, 2, 3, 4, 5, 0, 6, 7, 8, 0, 1, 2], np.uint16)
    index = NoveltyIndex.build(corpus, tmp_path, depth=8, eot=0)
    assert index.story_bounds(7) == (6, 9) and index.story_bounds(11) == (10, 12) and index.story_bounds(0) == (0, 5)
    assert index.longest_span([]) == Match(0, 0, -1) and index.closest_story_overlap([], Match(0, 0, -1)) == 0.0
    assert index.closest_story_overlap([9, 9], index.longest_span([9, 9])) == 0.0
    m = index.longest_span([6, 7, 8])
    assert m == Match(3, 0, 6) and index.closest_story_overlap([6, 7, 8], m) == 1.0  # shorter than n: one 3-gram
    assert index.longest_span([3, 4, 5, 6, 7]) == Match(3, 0, 2)  # its story is [1, 2, 3, 4, 5]
    assert index.closest_story_overlap([3, 4, 5, 6, 7], Match(3, 0, 2), n=2) == 0.5
    with pytest.raises(ValueError, match="does not lie inside"):
        index.closest_story_overlap([1, 2], Match(2, 0, 11))
    with pytest.raises(ValueError, match="n must be"):
        index.closest_story_overlap([1, 2], m, n=0)
    with pytest.raises(ValueError, match="outside the corpus"):
        index.story_bounds(12)
    plain = NoveltyIndex.build(corpus, tmp_path, depth=8)
    with pytest.raises(ValueError, match="without an end-of-text token"):
        plain.closest_story_overlap([6, 7, 8], plain.longest_span([6, 7, 8]))
