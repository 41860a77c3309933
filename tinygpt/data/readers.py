"""Reading TinyStories-style story files: streamed, repaired and cleaned.

Formats, chosen by file name (case-insensitive), each optionally gzip-compressed (``.gz`` suffix):

* ``.txt``: stories separated by a line ``<|endoftext|>`` (surrounding spaces or ``\\r`` allowed),
  the layout of the raw TinyStories V1/V2 files; lines end with ``\\n`` or ``\\r\\n``. Text before
  the first separator is a story; a file without any separator is one single story. Blank text
  before the first or after the last separator is not a story.
* ``.json``: a JSON array of objects (the TinyStories ``data00.json`` shards), parsed incrementally.
  A ``.json`` file that starts with ``{`` is read as a stream of objects (JSON Lines).
* ``.jsonl``: one JSON object per line; blank lines are skipped.

The text of a JSON object is its ``text_field`` when one is given, else the first present of
``"story"``, ``"text"``, ``"content"``. Files are read in blocks of ``BLOCK_SIZE`` bytes, so even a
multi-gigabyte file never sits in memory whole. Cleaning (`clean_story`, `fix_mojibake`) lives in
`tinygpt.data.clean`; its names are importable from here too.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import re
import sys
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Union

from tinygpt.data.clean import clean_story, fix_mojibake, normalize_whitespace, replace_lone_surrogates

__all__ = [
    "DecodeError", "ReadStats", "clean_story", "fix_mojibake", "iter_stories", "list_files",
    "load_hf_dataset", "read_stories",
]

BLOCK_SIZE = 4 << 20  # bytes read at a time
SEPARATOR = "<|endoftext|>"
FORMATS = (".txt", ".json", ".jsonl")
_DEFAULT_FIELDS = ("story", "text", "content")

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------------------------
# Statistics and errors
# ---------------------------------------------------------------------------------------------

@dataclass
class ReadStats:
    """What reading did; updated as stories stream."""

    files: int = 0
    stories: int = 0         # stories yielded
    bytes: int = 0           # UTF-8 bytes of the yielded (cleaned) stories
    empty: int = 0           # dropped: empty after cleaning
    duplicates: int = 0      # dropped: exact duplicate (after cleaning) of an earlier story
    mojibake_fixed: int = 0  # yielded stories in which mojibake was repaired
    replaced_bytes: int = 0  # invalid UTF-8 bytes replaced (errors="replace" only)
    skipped: int = 0         # dropped: JSON records the `record` function refused

    def summary(self) -> str:
        """One human line, e.g. ``2316 stories (2.1 MB) from 1 file; dropped 3 empty, 5 duplicates``."""
        s = (f"{self.stories} {'story' if self.stories == 1 else 'stories'} ({_human_bytes(self.bytes)}) "
             f"from {self.files} file{'' if self.files == 1 else 's'}")
        dropped = []
        if self.empty:
            dropped.append(f"{self.empty} empty")
        if self.duplicates:
            dropped.append(f"{self.duplicates} duplicate{'' if self.duplicates == 1 else 's'}")
        if self.skipped:
            dropped.append(f"{self.skipped} refused record{'' if self.skipped == 1 else 's'}")
        if dropped:
            s += "; dropped " + ", ".join(dropped)
        if self.mojibake_fixed:
            s += f"; repaired mojibake in {self.mojibake_fixed}"
        if self.replaced_bytes:
            s += f"; replaced {self.replaced_bytes} invalid byte{'' if self.replaced_bytes == 1 else 's'}"
        return s


def _human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class DecodeError(ValueError):
    """A file is not valid UTF-8 (``errors="strict"``); ``offset`` is that of its first bad byte."""

    def __init__(self, path: str, offset: int, byte: int):
        self.path, self.offset, self.byte = path, offset, byte
        where = " of the decompressed data" if path.lower().endswith(".gz") else ""
        super().__init__(
            f"{path}: not valid UTF-8: bad byte 0x{byte:02x} at byte offset {offset}{where}; "
            f'read it with errors="replace" to replace invalid bytes with U+FFFD and continue')

    def __reduce__(self):  # picklable, e.g. out of a DataLoader worker
        return type(self), (self.path, self.offset, self.byte)


# ---------------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------------

HF_PREFIX = "hf:"  # "hf:NAME" or "hf:NAME:SPLIT": a Hugging Face dataset instead of a file


def _format(path: str) -> str | None:
    if path.startswith(HF_PREFIX):
        return "hf"
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext in FORMATS:
        if name.endswith(ext):
            return ext
    return None


def list_files(inputs: PathLike | Iterable[PathLike]) -> list[str]:
    """Expands a path or paths into the files to read, in order.

    Files are kept as given (each must have a supported format), and so are "hf:NAME[:SPLIT]"
    Hugging Face dataset names (read by `load_hf_dataset`). Folders are searched recursively
    for supported files, hidden files and folders skipped, sorted by path. The same file named twice
    is read once. Raises FileNotFoundError for a missing path and ValueError for a folder without a
    supported file or a file of an unsupported format.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in inputs:
        p = os.fspath(item)
        if isinstance(p, str) and p.startswith(HF_PREFIX) and not os.path.exists(p):
            add(p)  # a Hugging Face dataset, streamed by load_hf_dataset
            continue
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                rel = os.path.relpath(root, p)
                parts = () if rel == os.curdir else tuple(rel.split(os.sep))
                found += [(parts + (f,), os.path.join(root, f)) for f in files
                          if not f.startswith(".") and _format(f)]
            if not found:
                raise ValueError(f"no .txt, .json or .jsonl files (optionally .gz) in folder {p}")
            for _, f in sorted(found):
                add(f)
        elif os.path.exists(p):
            if not _format(p):
                raise ValueError(f"unsupported file format: {p} (expected .txt, .json or .jsonl, "
                                 "optionally .gz-compressed)")
            add(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return out


# ---------------------------------------------------------------------------------------------
# Decoding: bytes -> text blocks
# ---------------------------------------------------------------------------------------------

_replaced = threading.local()


def _count_and_replace(e: UnicodeError):
    if not isinstance(e, UnicodeDecodeError):
        raise e
    _replaced.n += e.end - e.start
    return "\ufffd", e.end


codecs.register_error("tinygpt.data.replace", _count_and_replace)


def _iter_text(path: str, errors: str, stats: ReadStats) -> Iterator[str]:
    """Yields the decoded text of a (possibly gzipped) file in blocks; strips a leading BOM."""
    replace = errors == "replace"
    dec = codecs.getincrementaldecoder("utf-8")("tinygpt.data.replace" if replace else "strict")
    gz = path.lower().endswith(".gz")
    fed, first = 0, True
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        while True:
            try:
                data = f.read(BLOCK_SIZE)
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise ValueError(f"{path}: corrupt or truncated gzip file ({e})") from e
            final = not data
            _replaced.n = 0
            try:
                text = dec.decode(data, final)
            except UnicodeDecodeError as e:
                pending = len(dec.getstate()[0])  # bytes of `e.object` that came from earlier blocks
                raise DecodeError(path, fed - pending + e.start, e.object[e.start]) from None
            if replace:
                stats.replaced_bytes += _replaced.n
            fed += len(data)
            if first and text:
                first = False
                if text[0] == "\ufeff":
                    text = text[1:]
            if text:
                yield text
            if final:
                return


# ---------------------------------------------------------------------------------------------
# Readers: file -> raw story texts
# ---------------------------------------------------------------------------------------------

def _read_txt(path: str, errors: str, stats: ReadStats, text_field: str | None, record=None) -> Iterator[str]:
    sep, n = SEPARATOR, len(SEPARATOR)
    parts: list[str] = []  # pieces of the current story
    tail: list[str] = []   # text after the last newline seen (an incomplete line)
    first = True
    for text in _iter_text(path, errors, stats):
        j = text.rfind("\n")
        if j < 0:
            tail.append(text)
            continue
        tail.append(text if j == len(text) - 1 else text[:j + 1])
        region = tail[0] if len(tail) == 1 else "".join(tail)  # whole lines only
        tail = [text[j + 1:]] if j + 1 < len(text) else []
        start = pos = 0
        while True:
            i = region.find(sep, pos)
            if i < 0:
                break
            ls = region.rfind("\n", 0, i) + 1
            le = region.find("\n", i + n)  # found: the region ends with "\n"
            if (ls == i or region[ls:i].isspace()) and (le == i + n or region[i + n:le].isspace()):
                parts.append(region[start:ls])
                story = "".join(parts)
                parts = []
                if not first or (story and not story.isspace()):
                    yield story  # a blank story between two separators is counted as empty
                first = False
                start = pos = le + 1
            else:
                pos = i + n
        parts.append(region[start:] if start else region)
    rest = "".join(tail)
    if rest.strip() == sep:  # a separator on the last line, without a newline
        rest = ""
    parts.append(rest)
    story = "".join(parts)
    if story and not story.isspace():
        yield story


def _text_of(obj, fields: tuple[str, ...], where, record=None) -> str | None:
    if not isinstance(obj, dict):
        raise ValueError(f"{where()}: expected a JSON object, got {type(obj).__name__}")
    for f in fields:
        if f in obj:
            v = obj[f]
            if not isinstance(v, str):
                raise ValueError(f"{where()}: field {f!r} is {type(v).__name__}, not a string")
            if record is None:
                return v
            try:
                return record(obj, v)
            except ValueError as e:  # a bad record: say where it is
                raise ValueError(f"{where()}: {e}") from None
    names = " or ".join(repr(f) for f in fields)
    raise ValueError(f"{where()}: object has no {names} field")


_JSON_WS = re.compile(r"[ \t\n\r]*")


def _too_deep(where: str) -> ValueError:
    """Python's JSON parser recurses once per level of nesting and stops at its recursion limit;
    no story needs that depth, so the file is bad."""
    return ValueError(f"{where}: JSON nested too deeply to read (more than about {sys.getrecursionlimit()} "
                      "levels); a story is a string in an object")


def _read_json(path: str, errors: str, stats: ReadStats, text_field: str | None, record=None) -> Iterator[str]:
    fields = (text_field,) if text_field else _DEFAULT_FIELDS
    raw_decode = json.JSONDecoder().raw_decode
    blocks = _iter_text(path, errors, stats)
    buf, pos, base = "", 0, 0  # buffer, position in it, characters dropped before it
    lines = 0  # newlines dropped before the buffer

    def more() -> bool:
        nonlocal buf, pos, base, lines
        text = next(blocks, None)
        if text is None:
            return False
        base += pos
        lines += buf.count("\n", 0, pos)
        buf, pos = buf[pos:] + text, 0
        return True

    def peek() -> str:  # next non-whitespace character, "" at the end of the file
        nonlocal pos
        while True:
            pos = _JSON_WS.match(buf, pos).end()
            if pos < len(buf):
                return buf[pos]
            if not more():
                return ""

    def value(where):
        nonlocal pos
        if not peek():
            raise ValueError(f"{where()}: unexpected end of file")
        while True:
            try:
                obj, pos = raw_decode(buf, pos)
                return obj
            except RecursionError:
                line = lines + buf.count("\n", 0, pos) + 1
                raise _too_deep(f"{where()}, line {line}") from None
            except json.JSONDecodeError as e:
                # Only an error at the end of the buffer (or an unterminated string) can be
                # the buffer's fault: read more and retry. Anything else is bad JSON.
                truncated = e.pos >= len(buf) - 6 or e.msg.startswith("Unterminated string")
                if not (truncated and more()):
                    raise ValueError(f"{where()}: invalid JSON at character {base + e.pos}: "
                                     f"{e.msg}") from None

    index = 0
    def where():
        return f"{path}: element {index}" if array else f"{path}: object {index}"

    c = peek()
    if c == "":
        return
    array = c == "["
    if array:
        pos += 1
        if peek() == "]":
            pos += 1
        else:
            while True:
                yield _text_of(value(where), fields, where, record)
                index += 1
                c = peek()
                pos += 1
                if c == "]":
                    break
                if c != ",":
                    raise ValueError(f"{path}: expected ',' or ']' after element {index - 1} "
                                     f"at character {base + pos - 1}")
        if peek():
            raise ValueError(f"{path}: unexpected data after the JSON array at character {base + pos}")
    elif c == "{":  # a stream of objects, e.g. JSON Lines written with a .json name
        while peek():
            yield _text_of(value(where), fields, where, record)
            index += 1
    else:
        raise ValueError(f"{path}: expected a JSON array of objects, found {c!r} at character {base + pos}")


def _read_jsonl(path: str, errors: str, stats: ReadStats, text_field: str | None, record=None) -> Iterator[str]:
    fields = (text_field,) if text_field else _DEFAULT_FIELDS
    loads = json.loads
    lineno = 0
    carry = ""

    def parse(line: str) -> str | None:
        try:
            obj = loads(line)
        except RecursionError:
            raise _too_deep(f"{path}, line {lineno}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {lineno}: invalid JSON: {e}") from None
        return _text_of(obj, fields, lambda: f"{path}, line {lineno}", record)

    for text in _iter_text(path, errors, stats):
        lines = (carry + text).split("\n")
        carry = lines.pop()
        for line in lines:
            lineno += 1
            if line and not line.isspace():
                yield parse(line)
    lineno += 1
    if carry and not carry.isspace():
        yield parse(carry)


def _read_hf(spec: str, errors: str, stats: ReadStats, text_field: str | None, record=None) -> Iterator[str]:
    name, _, split = spec[len(HF_PREFIX):].partition(":")
    return load_hf_dataset(name, split or "train", text_field or "text")


_READERS = {".txt": _read_txt, ".json": _read_json, ".jsonl": _read_jsonl, "hf": _read_hf}


# ---------------------------------------------------------------------------------------------
# Public readers
# ---------------------------------------------------------------------------------------------

def iter_stories(inputs: PathLike | Iterable[PathLike], *, clean: bool = True,
                 dedupe: bool | None = None, errors: str = "strict",
                 stats: ReadStats | None = None, text_field: str | None = None,
                 record: Callable[[dict, str], str | None] | None = None) -> Iterator[str]:
    """Streams the stories of files and folders (see `list_files`), in order.

    clean: repair mojibake and normalize whitespace (`clean_story`), else return each story as
        split, with only surrounding newlines stripped. Empty stories are dropped either way.
    dedupe: drop exact duplicates of an earlier story of this call (default: same as `clean`).
    errors: "strict" raises `DecodeError` (a ValueError) at the first byte that is not UTF-8;
        "replace" turns invalid bytes into U+FFFD and counts them.
    stats: a `ReadStats` to update as stories stream.
    text_field: the field holding the text in .json/.jsonl objects (default: the first present of
        "story", "text", "content").
    record: `record(object, its text)` gives the text to yield for a .json/.jsonl object (None:
        skip it, counted in `stats.skipped`; a ValueError names the file and line). JSON files only.

    Missing paths and bad arguments raise here; file contents raise while iterating.
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f'errors must be "strict" or "replace", not {errors!r}')
    files = list_files(inputs)
    if record is not None and (bare := [f for f in files if _format(f) not in (".json", ".jsonl")]):
        raise ValueError(f"{bare[0]} holds bare stories, not the JSON records (.json, .jsonl) that record= reads")
    return _stream(files, clean, clean if dedupe is None else dedupe, errors,
                   ReadStats() if stats is None else stats, text_field, record)


def _stream(files, clean, dedupe, errors, stats, text_field, record=None) -> Iterator[str]:
    seen: set[bytes] = set()
    blake2b = hashlib.blake2b
    for path in files:
        stats.files += 1
        for text in _READERS[_format(path)](path, errors, stats, text_field, record):
            if text is None:
                stats.skipped += 1
                continue
            if not text.isascii():
                text, n = replace_lone_surrogates(text, path, errors)
                stats.replaced_bytes += n
            if clean:
                if text.isascii():
                    text, fixed = normalize_whitespace(text), False
                else:
                    text, fixed = clean_story(text)
            else:
                fixed = False
                text = text.strip("\r\n")
                if text.isspace():
                    text = ""
            if not text:
                stats.empty += 1
                continue
            raw = text.encode("utf-8")
            if dedupe:
                key = blake2b(raw, digest_size=16).digest()
                if key in seen:
                    stats.duplicates += 1
                    continue
                seen.add(key)
            stats.stories += 1
            stats.bytes += len(raw)
            stats.mojibake_fixed += fixed
            yield text


def read_stories(inputs: PathLike | Iterable[PathLike], **kw) -> list[str]:
    """``list(iter_stories(inputs, **kw))``."""
    return list(iter_stories(inputs, **kw))


def load_hf_dataset(name: str, split: str = "train", text_field: str = "text") -> Iterator[str]:
    """Streams the raw texts of a Hugging Face dataset (e.g. ``roneneldan/TinyStories``).

    Needs the optional `datasets` package; the texts are not cleaned (see `clean_story`).
    """
    try:
        import datasets
    except ImportError as e:
        raise ImportError("load_hf_dataset needs the Hugging Face `datasets` package: "
                          "pip install datasets") from e
    ds = datasets.load_dataset(name, split=split, streaming=True)

    def texts() -> Iterator[str]:
        for i, row in enumerate(ds):
            if text_field not in row:
                raise ValueError(f"{name} ({split}): row {i} has no {text_field!r} field "
                                 f"(fields: {', '.join(row)})")
            yield row[text_field]

    return texts()
