"""Byte-level BPE tokenizer (GPT-2 / tiktoken style) with a native core.

Pre-tokenization splits text with a regex pattern ("gpt2", "gpt4" = cl100k, or a custom regex);
each pre-token is then merged by rank. The built-in patterns are split by hand-written native
code; custom patterns go through the `regex` module.
"""

from __future__ import annotations

import array
import base64
import codecs
import hashlib
import json
import os
import warnings
from collections import Counter
from typing import Iterable, Mapping, Sequence, Union

from tqdm.auto import tqdm

from tinygpt._native import _C
from tinygpt.tokenizer import huggingface
from tinygpt.fileio import write_json
from tinygpt.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN, PATTERNS, resolve, split_covering

__all__ = ["Tokenizer", "IncrementalDecoder", "GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS"]

FORMAT = "tinygpt-tokenizer"
FORMAT_VERSION = 1
EOT = "<|endoftext|>"
MAX_ID = 1 << 24  # ids index dense tables: a corrupt file must not ask for gigabytes

PathLike = Union[str, "os.PathLike[str]"]


def _default_threads(num_threads: int | None) -> int:
    if num_threads is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return num_threads


def _looks_like_paths(items: Sequence) -> bool:
    """A list of str is taken as file paths only when every entry names an existing file."""
    if not items:
        return False
    if all(isinstance(x, os.PathLike) for x in items):
        return True
    return all(
        isinstance(x, str) and len(x) < 4096 and "\n" not in x and os.path.isfile(x) for x in items
    )


class IncrementalDecoder:
    """Turns a stream of token ids into text without ever emitting half a UTF-8 character.

    >>> dec = tok.decoder()
    >>> for i in ids: print(dec.add([i]), end="")
    >>> print(dec.flush())
    """

    def __init__(self, tokenizer: "Tokenizer", errors: str = "replace"):
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors=errors)

    def add(self, ids: Iterable[int] | int) -> str:
        """Feeds ids; returns the text they complete (possibly empty)."""
        if isinstance(ids, int):
            ids = [ids]
        return self._utf8.decode(self._tok.decode_bytes(ids))

    def flush(self) -> str:
        """Ends the stream: a dangling partial character becomes U+FFFD."""
        return self._utf8.decode(b"", final=True)


class Tokenizer:
    """A byte-level BPE tokenizer. Make one with `Tokenizer.train`, `Tokenizer.load`,
    `Tokenizer.from_tiktoken` or `Tokenizer.from_huggingface`."""

    def __init__(
        self,
        tokens: Sequence[bytes | None],
        *,
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = "gpt4",
        merges: Sequence[tuple[int, int]] | None = None,
        ignore_merges: bool = True,
    ):
        """Low-level constructor: `tokens[id]` is the byte string of token `id` (None for an unused
        id). Without `merges`, ids are ranks (tiktoken semantics); with `merges`, those pairs apply
        in list order (Hugging Face semantics) and `ignore_merges` emits pre-tokens that are in the
        vocabulary whole."""
        self._pattern, self._kind = resolve(pattern)
        tokens = list(tokens)
        specials = dict(special_tokens or {})
        for name, i in specials.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"special token names must be non-empty str, got {name!r}")
            if not isinstance(i, int) or not 0 <= i < MAX_ID:
                raise ValueError(f"special token {name!r} has invalid id {i!r}")
            while len(tokens) <= i:
                tokens.append(None)
            if tokens[i] is not None and tokens[i] != name.encode():
                raise ValueError(f"special token {name!r}: id {i} already holds another token")
            tokens[i] = name.encode()
        self._tokens = tokens
        self._specials = specials
        self._special_names = list(specials)
        self._all_special_indices = list(range(len(specials)))
        self._merges = None if merges is None else [tuple(map(int, m)) for m in merges]
        self._ignore_merges = bool(ignore_merges) if merges is not None else True
        try:
            self._core = _C.BPE(
                tokens,
                self._merges is None,
                self._merges or [],
                list(specials.items()),
                self._kind,
                self._ignore_merges,
            )
        except TypeError as e:
            raise TypeError(f"tokens must be bytes or None: {e}") from None
        if self._kind == "custom":
            import regex

            self._regex = regex.compile(self._pattern)
        self._fingerprint = None

    # ----------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """One more than the largest token id (special tokens included)."""
        return len(self._tokens)

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._specials)

    @property
    def eot_token(self) -> int | None:
        """Id of `<|endoftext|>`, or None if this tokenizer has no such token."""
        return self._specials.get(EOT)

    @property
    def pattern(self) -> str:
        """The pre-tokenizer regex."""
        return self._pattern

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the tokenizer's content: equal fingerprints mean identical encodings."""
        if self._fingerprint is None:
            blob = json.dumps(self._state(), sort_keys=True, separators=(",", ":")).encode()
            self._fingerprint = hashlib.sha256(blob).hexdigest()
        return self._fingerprint

    def token_bytes(self, token_id: int) -> bytes:
        return self.decode_bytes([token_id])

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, pattern={self._kind!r}, "
            f"special_tokens={self._specials})"
        )

    # ------------------------------------------------------------------------------- encoding
    def _special_sets(self, allowed_special, disallowed_special) -> tuple[list[int], list[int]]:
        """(allowed, disallowed) as indices into the special-token names."""
        names = self._special_names
        if isinstance(disallowed_special, str) and disallowed_special == "all" and not allowed_special:
            return [], self._all_special_indices  # the default: skip the set arithmetic
        if allowed_special == "all":
            allowed = set(names)
        else:
            if isinstance(allowed_special, str):
                raise TypeError('allowed_special must be a set of names or "all"')
            allowed = set(allowed_special)
            unknown = allowed - set(names)
            if unknown:
                raise ValueError(f"unknown special tokens in allowed_special: {sorted(unknown)}")
        if disallowed_special == "all":
            disallowed = set(names) - allowed
        else:
            if isinstance(disallowed_special, str):
                raise TypeError('disallowed_special must be a set of names or "all"')
            disallowed = set(disallowed_special)
        index = {n: i for i, n in enumerate(names)}
        return sorted(index[n] for n in allowed), sorted(index[n] for n in disallowed if n in index)

    @staticmethod
    def _check_text(text) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")

    def encode(self, text: str, *, allowed_special=(), disallowed_special="all") -> list[int]:
        """Encodes text. A special token appearing in the text raises ValueError unless it is in
        `allowed_special` (a set of names, or "all"; then it becomes its id) or excluded from
        `disallowed_special` (then it is encoded as plain text), as in tiktoken."""
        self._check_text(text)
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if self._kind == "custom":
            return self._encode_custom(text, allowed, disallowed)
        return self._core.encode(text, allowed, disallowed)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encodes text, treating special-token strings as plain text."""
        self._check_text(text)
        if self._kind == "custom":
            return self._encode_custom(text, [], [])
        return self._core.encode(text, [], [])

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special=(),
        disallowed_special="all",
        num_threads: int | None = None,
    ) -> list[list[int]]:
        """Encodes many texts in parallel (native threads, GIL released)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of str, not a single str")
        if not isinstance(texts, list):
            texts = list(texts)  # the native side checks that each item is a str
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if self._kind == "custom":
            return [self._encode_custom(t, allowed, disallowed) for t in texts]
        return self._core.encode_batch(texts, allowed, disallowed, _default_threads(num_threads))

    def encode_batch_flat(
        self,
        texts: Sequence[str],
        *,
        separator: int | None = None,
        allowed_special=(),
        disallowed_special="all",
        num_threads: int | None = None,
    ) -> memoryview:
        """Like `encode_batch`, but all ids back to back in one uint32 buffer (a memoryview of
        format "I"; `numpy.frombuffer` takes it as is), with the id `separator` after each text
        when given. No Python int per token: the form to write token shards in."""
        if isinstance(texts, str):
            raise TypeError("encode_batch_flat takes a list of str, not a single str")
        if not isinstance(texts, list):
            texts = list(texts)
        if separator is not None and not (isinstance(separator, int) and 0 <= separator < self.vocab_size):
            raise ValueError(f"separator must be a token id in [0, {self.vocab_size}), got {separator!r}")
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        sep = -1 if separator is None else separator
        if self._kind == "custom":
            flat = array.array("I")
            for ids in self.encode_batch(texts, allowed_special=allowed_special,
                                         disallowed_special=disallowed_special):
                flat.extend(ids)
                if sep >= 0:
                    flat.append(sep)
            return memoryview(flat)
        raw = self._core.encode_batch_flat(texts, allowed, disallowed, _default_threads(num_threads), sep)
        return memoryview(raw).cast("I")

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encodes arbitrary bytes; invalid UTF-8 bytes pre-tokenize as punctuation would, and
        `decode_bytes` gives the input back exactly."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        if self._kind == "custom":
            text = data.decode("utf-8", errors="surrogateescape")
            pieces = [p.encode("utf-8", "surrogateescape") for p in self._pieces(text)]
            return self._core.encode_pieces(pieces)
        return self._core.encode_bytes(data)

    def _encode_custom(self, text: str, allowed: list[int], disallowed: list[int]) -> list[int]:
        names = self._special_names
        for i in disallowed:
            if names[i] in text:
                raise ValueError(
                    f"the text contains the special token {names[i]!r}, which is not allowed: pass "
                    f"allowed_special={{{names[i]!r}}} (or \"all\") to encode it as a special token"
                )
        out: list[int] = []
        segments = [text]
        if allowed:
            import regex

            alt = "|".join(regex.escape(names[i]) for i in sorted(allowed, key=lambda i: -len(names[i])))
            segments = regex.split(f"({alt})", text)
        for k, seg in enumerate(segments):
            if k % 2:
                out.append(self._specials[seg])
            elif seg:
                out.extend(self._core.encode_pieces([p.encode() for p in self._pieces(seg)]))
        return out

    def _pieces(self, text: str) -> list[str]:
        """Custom-pattern pre-tokens; text the pattern does not match would be lost, so refuse."""
        return split_covering(self._regex, text)

    # ------------------------------------------------------------------------------- decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of the tokens. Unknown ids raise ValueError."""
        if not isinstance(ids, (list, tuple)):
            if isinstance(ids, (str, bytes)):
                raise TypeError("ids must be a sequence of ints")
            ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return self._core.decode_bytes(ids)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of the tokens; invalid UTF-8 becomes U+FFFD (with the default errors="replace")."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decoder(self, errors: str = "replace") -> IncrementalDecoder:
        """An incremental decoder for streaming generation."""
        return IncrementalDecoder(self, errors)

    # ------------------------------------------------------------------------------- training
    @classmethod
    def train(
        cls,
        texts: Iterable[str] | Sequence[PathLike],
        vocab_size: int,
        *,
        pattern: str = "gpt4",
        special_tokens: Sequence[str] = (EOT,),
        num_threads: int | None = None,
        progress: bool = False,
    ) -> "Tokenizer":
        """Learns a byte-level BPE vocabulary of `vocab_size` tokens (256 bytes + merges +
        special tokens). `texts` is an iterable of str, or a list of file paths (pathlib.Path, or
        str naming existing files), streamed from disk. Occurrences of the special tokens in the
        text are cut out. Deterministic: the same input gives the same vocabulary whatever
        `num_threads` is. Merge ties go to the smaller (left id, right id) pair. `progress` shows
        a progress bar (on stderr) while the text is read."""
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
        pat, kind = resolve(pattern)
        threads = _default_threads(num_threads)
        counter = _C.WordCounter(kind, specials, threads)
        sources = list(cls._iter_sources(texts)) if isinstance(texts, (list, tuple)) else cls._iter_sources(texts)
        total = None
        if isinstance(sources, list) and all(k == "file" for k, _ in sources):
            total = sum(os.path.getsize(p) for _, p in sources if os.path.isfile(p))
        with tqdm(total=total, unit="B", unit_scale=True, desc="reading text", disable=not progress) as bar:
            if kind == "custom":
                cls._count_custom(counter, sources, pat, specials, bar)
            else:
                cls._count_native(counter, sources, bar)
        if counter.num_bytes == 0:
            raise ValueError("empty corpus: there is no text to train on")
        want = vocab_size - minimum
        new_tokens, _ = counter.train(want)
        if len(new_tokens) < want:
            warnings.warn(
                f"the corpus only supports {len(new_tokens)} merges, so the vocabulary has "
                f"{minimum + len(new_tokens)} tokens instead of {vocab_size}",
                stacklevel=2,
            )
        tokens = [bytes([b]) for b in range(256)] + list(new_tokens)
        ids = {s: len(tokens) + k for k, s in enumerate(specials)}
        return cls(tokens, special_tokens=ids, pattern=pat)

    @staticmethod
    def _iter_sources(texts):
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
                yield "file", os.fspath(p)
            return
        for t in texts:
            if isinstance(t, os.PathLike):
                yield "file", os.fspath(t)
            elif isinstance(t, str):
                yield "text", t
            else:
                raise TypeError(f"texts must contain str or paths, got {type(t).__name__}")

    @staticmethod
    def _count_native(counter, sources, bar) -> None:
        batch: list[str] = []
        size = 0

        def flush() -> None:
            before = counter.num_bytes
            counter.add_texts(batch)
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

    @staticmethod
    def _count_custom(counter, sources, pat: str, specials: list[str], bar) -> None:
        import regex

        rx = regex.compile(pat)
        cut = regex.compile("|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)))
        counts: Counter = Counter()

        def add(text: str) -> None:
            for seg in cut.split(text) if specials else [text]:
                counts.update(split_covering(rx, seg))

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
                bar.update(len(item.encode()))
        for piece, n in sorted(counts.items()):
            counter.add_piece(piece.encode(), n)

    # ---------------------------------------------------------------------------- persistence
    def _state(self) -> dict:
        special_ids = set(self._specials.values())
        state = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "pattern": self._pattern,
            "mode": "ranks" if self._merges is None else "merges",
            "tokens": [
                None if (t is None or i in special_ids) else base64.b64encode(t).decode("ascii")
                for i, t in enumerate(self._tokens)
            ],
            "special_tokens": dict(self._specials),
        }
        if self._merges is not None:
            state["merges"] = [list(m) for m in self._merges]
            state["ignore_merges"] = self._ignore_merges
        return state

    def save(self, path: PathLike) -> None:
        """Writes the tokenizer as JSON (format documented in the README), atomically."""
        write_json(path, self._state(), indent=None, separators=(",", ":"))

    @classmethod
    def load(cls, path: PathLike) -> "Tokenizer":
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a tinygpt tokenizer file (unreadable JSON: {e})") from None
        return cls._from_state(state, path)

    @classmethod
    def _from_state(cls, state, where: str) -> "Tokenizer":
        def bad(msg: str) -> ValueError:
            return ValueError(f"{where} is not a valid tinygpt tokenizer file: {msg}")

        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise bad(f"missing \"format\": \"{FORMAT}\"")
        version = state.get("version")
        if not isinstance(version, int):
            raise bad("missing version")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{where} was written by a newer tinygpt (tokenizer format version {version}; "
                f"this one reads up to {FORMAT_VERSION}): upgrade tinygpt"
            )
        try:
            pattern = state["pattern"]
            mode = state["mode"]
            raw = state["tokens"]
            specials = state["special_tokens"]
            if mode not in ("ranks", "merges") or not isinstance(raw, list):
                raise bad(f"unknown mode {mode!r}")
            if not isinstance(specials, dict):
                raise bad("special_tokens must be an object")
            tokens = [None if t is None else base64.b64decode(t, validate=True) for t in raw]
            merges = None
            if mode == "merges":
                merges = [(int(a), int(b)) for a, b in state["merges"]]
            return cls(
                tokens,
                special_tokens=specials,
                pattern=pattern,
                merges=merges,
                ignore_merges=bool(state.get("ignore_merges", False)),
            )
        except ValueError as e:
            if str(e).startswith(where):
                raise
            raise bad(str(e)) from None
        except (KeyError, TypeError, base64.binascii.Error) as e:
            raise bad(f"{type(e).__name__}: {e}") from None

    # ---------------------------------------------------------------------------- interchange
    def to_tiktoken(self) -> dict:
        """`pat_str`, `mergeable_ranks` and `special_tokens` for `tiktoken.Encoding(name, **it)`."""
        if self._merges is not None:
            raise ValueError(
                "this tokenizer applies an explicit merge list (it came from a Hugging Face file); "
                "tiktoken's rank semantics cannot express it exactly"
            )
        special_ids = set(self._specials.values())
        ranks = {t: i for i, t in enumerate(self._tokens) if t is not None and i not in special_ids}
        return {"pat_str": self._pattern, "mergeable_ranks": ranks, "special_tokens": dict(self._specials)}

    @classmethod
    def from_tiktoken(
        cls,
        pat_str: str,
        mergeable_ranks: Mapping[bytes, int] | PathLike,
        special_tokens: Mapping[str, int] | None = None,
        **_ignored,
    ) -> "Tokenizer":
        """From tiktoken's pieces: the pattern (or "gpt2"/"gpt4"), the ranks (a dict, or the path
        of a `.tiktoken` rank file: one "base64-token rank" per line), and special tokens."""
        if isinstance(mergeable_ranks, (str, os.PathLike)):
            mergeable_ranks = cls._read_tiktoken_file(os.fspath(mergeable_ranks))
        tokens: list[bytes | None] = []
        for t, r in mergeable_ranks.items():
            if not isinstance(t, bytes) or not isinstance(r, int) or not 0 <= r < MAX_ID:
                raise ValueError(f"mergeable_ranks must map bytes to non-negative int ranks, got {t!r}: {r!r}")
            while len(tokens) <= r:
                tokens.append(None)
            if tokens[r] is not None:
                raise ValueError(f"rank {r} is given twice in mergeable_ranks")
            tokens[r] = t
        return cls(tokens, special_tokens=special_tokens or {}, pattern=pat_str)

    @staticmethod
    def _read_tiktoken_file(path: str) -> dict[bytes, int]:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tiktoken rank file not found: {path}")
        ranks = {}
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    tok, rank = line.split()
                    ranks[base64.b64decode(tok, validate=True)] = int(rank)
                except (ValueError, base64.binascii.Error):
                    raise ValueError(f"{path}:{n}: not a '<base64> <rank>' line") from None
        return ranks

    def merges(self) -> list[tuple[int, int]]:
        """The merge rules as pairs of token ids, in priority order (the first merges first)."""
        return list(self._merges) if self._merges is not None else [tuple(m) for m in self._core.derive_merges()]

    def to_huggingface(self, path: PathLike) -> None:
        """Writes a `tokenizer.json` that Hugging Face `tokenizers` loads and that encodes
        identically (`path` may be a directory or the file name)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        huggingface.write(path, self._tokens, self._specials, self.merges(), self._pattern, self._ignore_merges)

    @classmethod
    def from_huggingface(cls, path: PathLike) -> "Tokenizer":
        """Loads a byte-level BPE `tokenizer.json` (file or directory holding one)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tokenizer.json not found: {path}")
        args = huggingface.read(path, MAX_ID)
        try:
            return cls(args.pop("tokens"), **args)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
