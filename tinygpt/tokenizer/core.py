"""Byte-level BPE tokenizer (GPT-2 / tiktoken style) with a native core: construction, encoding
and decoding. Training (trainer.py), the JSON file (jsonfile.py), tiktoken (tiktoken_format.py)
and Hugging Face (huggingface.py) interchange live beside it; `Tokenizer` reaches them through
thin methods, and none of them imports this module.

Pre-tokenization splits text with a regex pattern ("gpt2", "gpt4" = cl100k, or a custom regex);
each pre-token is then merged by rank. The built-in patterns are split by hand-written native
code; custom patterns go through the `regex` module.

Any Python str encodes, lone surrogates included ("a\\ud800b" is a str, not valid Unicode): they
are encoded as Python's "surrogatepass" error handler writes them, three bytes each, and
`decode(ids, errors="surrogatepass")` gives them back. The native encoder takes UTF-8 only, so
such a text takes a slower path through `encode_bytes`; valid text never pays for it.
"""

from __future__ import annotations

import array
import codecs
import hashlib
import json
import os
import re
from typing import Iterable, Mapping, Sequence, Union

from tinygpt._native import _C
from tinygpt.tokenizer import huggingface, jsonfile, specials as _specials, tiktoken_format
from tinygpt.tokenizer.limits import MAX_ID, MAX_TOKEN_BYTES, MAX_VOCAB_SIZE, default_threads as _default_threads
from tinygpt.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN, PATTERNS, resolve, split_covering
from tinygpt.tokenizer.specials import DisallowedSpecialError

__all__ = ["Tokenizer", "IncrementalDecoder", "DisallowedSpecialError", "GPT2_PATTERN", "GPT4_PATTERN", "PATTERNS"]

EOT = "<|endoftext|>"
SURROGATES = "surrogatepass"  # how a lone surrogate becomes bytes, and (in decode) back
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

PathLike = Union[str, "os.PathLike[str]"]


def _utf8_ok(text: str) -> bool:
    """Whether the native encoder takes `text`: a str without lone surrogates."""
    return text.isascii() or _LONE_SURROGATE.search(text) is None


def _short(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:40] + "...")


def _check_vocabulary(tokens: list, specials: dict) -> None:
    """Refuses vocabularies no real tokenizer has, before anything is allocated for them."""
    if len(tokens) > MAX_VOCAB_SIZE:
        raise ValueError(f"{len(tokens)} tokens in all, more than the {MAX_VOCAB_SIZE} a tokenizer may have")
    for name, i in specials.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"special token names must be non-empty str, got {name!r}")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < MAX_ID:
            raise ValueError(f"special token {_short(name)} has id {i!r}, not an int in [0, {MAX_ID})")
        if len(name) * 4 > MAX_TOKEN_BYTES and len(name.encode()) > MAX_TOKEN_BYTES:  # 4: UTF-8's longest
            raise ValueError(f"special token {_short(name)} is {len(name.encode())} bytes long, more than "
                             f"the {MAX_TOKEN_BYTES} a token may have")
    try:
        longest = max(map(len, filter(None, tokens)), default=0)
    except TypeError:
        return  # not bytes: the native constructor says so
    if longest > MAX_TOKEN_BYTES:
        i = next(i for i, t in enumerate(tokens) if t and len(t) > MAX_TOKEN_BYTES)
        raise ValueError(f"token {i} is {len(tokens[i])} bytes long, more than the {MAX_TOKEN_BYTES} a "
                         "token may have")


def _check_strs(texts: list) -> None:
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{k}] must be str, got {type(t).__name__}")


def _flatten(lists: list[list[int]], sep: int) -> memoryview:
    """Ids back to back in one uint32 buffer, `sep` after each list when >= 0."""
    flat = array.array("I")
    for ids in lists:
        flat.extend(ids)
        if sep >= 0:
            flat.append(sep)
    return memoryview(flat)


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
        _check_vocabulary(tokens, specials)
        for name, i in specials.items():
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
        if isinstance(disallowed_special, str) and disallowed_special == "all" and not allowed_special:
            return [], self._all_special_indices  # the default: skip the set arithmetic
        return _specials.index_sets(self._special_names, allowed_special, disallowed_special)

    def _refused(self, texts: Sequence[str], disallowed: list[int], batch: bool) -> DisallowedSpecialError | None:
        """After the native encoder refused a text: the error to raise instead, naming the token
        and where it is (None: the native error was about something else)."""
        return _specials.refused(texts, self._special_names, disallowed, batch)

    @staticmethod
    def _check_text(text) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")

    def encode(self, text: str, *, allowed_special=(), disallowed_special="all") -> list[int]:
        """Encodes text. A special token appearing in the text raises `DisallowedSpecialError` (a
        ValueError) unless it is in `allowed_special` (a set of names, or "all"; then it becomes
        its id) or excluded from `disallowed_special` (then it is encoded as plain text), as in
        tiktoken. Lone surrogates are encoded as "surrogatepass" writes them."""
        self._check_text(text)
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if self._kind == "custom":
            return self._encode_custom(text, allowed, disallowed)
        try:
            return self._core.encode(text, allowed, disallowed)
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8 (caught before the ValueError below)
            pass
        except ValueError as e:
            raise self._refused([text], disallowed, batch=False) or e from None
        return self._encode_surrogates(text, allowed, disallowed)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encodes text, treating special-token strings as plain text."""
        self._check_text(text)
        if self._kind == "custom":
            return self._encode_custom(text, [], [])
        try:
            return self._core.encode(text, [], [])
        except UnicodeEncodeError:
            pass
        return self._encode_surrogates(text, [], [])

    def _encode_surrogates(self, text: str, allowed: list[int], disallowed: list[int]) -> list[int]:
        """`encode` of a text with lone surrogates: each piece between allowed special tokens as
        its "surrogatepass" bytes."""
        return self._encode_segments(text, allowed, disallowed,
                                     lambda seg: self._core.encode_bytes(seg.encode("utf-8", SURROGATES)))

    def _encode_segments(self, text: str, allowed: list[int], disallowed: list[int], encode_segment) -> list[int]:
        """The ids of `text`: its allowed special tokens as theirs, the text between them through
        `encode_segment` (after the disallowed-special check)."""
        names = self._special_names
        _specials.check([text], names, disallowed, batch=False)
        out: list[int] = []
        for k, seg in enumerate(_specials.split(text, names, allowed)):
            if k % 2:
                out.append(self._specials[seg])
            elif seg:
                out.extend(encode_segment(seg))
        return out

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
            _check_strs(texts)
            _specials.check(texts, self._special_names, disallowed, batch=True)
            return [self._encode_custom(t, allowed, []) for t in texts]
        threads = _default_threads(num_threads)
        try:
            return self._core.encode_batch(texts, allowed, disallowed, threads)
        except UnicodeEncodeError:
            pass
        except ValueError as e:
            raise self._refused(texts, disallowed, batch=True) or e from None
        return self._batch_with_surrogates(texts, allowed, disallowed, threads)

    def _batch_with_surrogates(self, texts: list, allowed: list[int], disallowed: list[int],
                               threads: int) -> list[list[int]]:
        """`encode_batch` when some texts hold lone surrogates: the others still go natively."""
        _check_strs(texts)
        _specials.check(texts, self._special_names, disallowed, batch=True)
        odd = {k for k, t in enumerate(texts) if not _utf8_ok(t)}
        out = self._core.encode_batch(["" if k in odd else t for k, t in enumerate(texts)], allowed, [], threads)
        for k in odd:
            out[k] = self._encode_surrogates(texts[k], allowed, [])
        return out

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
        if self._kind != "custom":
            try:
                raw = self._core.encode_batch_flat(texts, allowed, disallowed, _default_threads(num_threads), sep)
                return memoryview(raw).cast("I")
            except UnicodeEncodeError:  # lone surrogates: through the lists, as for a custom pattern
                pass
            except ValueError as e:
                raise self._refused(texts, disallowed, batch=True) or e from None
        lists = self.encode_batch(texts, allowed_special=allowed_special, disallowed_special=disallowed_special,
                                  num_threads=num_threads)
        return _flatten(lists, sep)

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
        return self._encode_segments(text, allowed, disallowed, lambda seg: self._core.encode_pieces(
            [p.encode("utf-8", SURROGATES) for p in self._pieces(seg)]))

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
        """Text of the tokens. `errors` is Python's UTF-8 error handler: with the default "replace"
        invalid UTF-8 becomes U+FFFD, so the text always prints; "surrogatepass" gives back the
        lone surrogates that `encode` took."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decoder(self, errors: str = "replace") -> IncrementalDecoder:
        """An incremental decoder for streaming generation (`errors` as in `decode`)."""
        return IncrementalDecoder(self, errors)

    def merges(self) -> list[tuple[int, int]]:
        """The merge rules as pairs of token ids, in priority order (the first merges first)."""
        return list(self._merges) if self._merges is not None else [tuple(m) for m in self._core.derive_merges()]

    # ------------------------------------------------------------- training (in trainer.py)
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
        from tinygpt.tokenizer import trainer  # loads tqdm: only when training

        return cls(**trainer.train(texts, vocab_size, pattern=pattern, special_tokens=special_tokens,
                                   num_threads=num_threads, progress=progress))

    # ------------------------------------------------------- persistence (in jsonfile.py)
    def _state(self) -> dict:
        return jsonfile.state(self._tokens, self._specials, self._pattern, self._merges, self._ignore_merges)

    def save(self, path: PathLike) -> None:
        """Writes the tokenizer as JSON (format: docs/tokenizer.md), atomically."""
        jsonfile.save(path, self._state())

    @classmethod
    def load(cls, path: PathLike) -> "Tokenizer":
        path = os.fspath(path)
        return cls._from_state(jsonfile.read(path), path)

    @classmethod
    def _from_state(cls, state, where: str) -> "Tokenizer":
        with jsonfile.invalid_file(where):
            return cls(**jsonfile.parse(state, where))

    # ---------------------------------------- interchange (tiktoken_format.py, huggingface.py)
    def to_tiktoken(self) -> dict:
        """`pat_str`, `mergeable_ranks` and `special_tokens` for `tiktoken.Encoding(name, **it)`."""
        return tiktoken_format.to_tiktoken(self._tokens, self._specials, self._pattern, self._merges is not None)

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
        return cls(**tiktoken_format.from_tiktoken(pat_str, mergeable_ranks, special_tokens, MAX_ID))

    @staticmethod
    def _read_tiktoken_file(path: str) -> dict[bytes, int]:
        return tiktoken_format.read_ranks(path)

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
