"""Reading and writing Hugging Face `tokenizer.json` files for byte-level BPE."""

from __future__ import annotations

import json
from typing import Mapping, Sequence

from tinygpt.fileio import write_json
from tinygpt.tokenizer.patterns import GPT2_PATTERN, from_onig, to_onig


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level tokenizer.json."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_BYTE_TO_CHAR = _bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _to_str(token: bytes) -> str:
    return "".join(_BYTE_TO_CHAR[b] for b in token)


def write(
    path: str,
    tokens: Sequence[bytes | None],
    special_tokens: Mapping[str, int],
    merges: Sequence[tuple[int, int]],
    pattern: str,
    ignore_merges: bool,
) -> None:
    """Writes tokenizer.json atomically; `merges` in priority order."""
    special_ids = set(special_tokens.values())
    vocab = {_to_str(t): i for i, t in enumerate(tokens) if t is not None and i not in special_ids}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for name, i in sorted(special_tokens.items(), key=lambda kv: kv[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": to_onig(pattern)}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": ignore_merges,
            "vocab": vocab,
            "merges": [f"{_to_str(tokens[a])} {_to_str(tokens[b])}" for a, b in merges],
        },
    }
    write_json(path, doc)


def read(path: str, max_id: int) -> dict:
    """Parses a byte-level BPE tokenizer.json into the Tokenizer constructor's arguments:
    tokens, special_tokens, pattern, merges, ignore_merges. Raises ValueError naming the file."""

    def bad(msg: str) -> ValueError:
        return ValueError(f"{path}: {msg}")

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"not a Hugging Face tokenizer.json ({e})") from None
    except RecursionError:  # json's decoder recurses per level: a crafted file can exhaust it
        raise bad("not a Hugging Face tokenizer.json (its JSON is nested too deeply)") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict):
        raise bad("not a Hugging Face tokenizer.json (no model)")
    if model.get("type", "BPE") != "BPE":
        raise bad(f"only BPE models are supported, not {model.get('type')!r}")
    if doc.get("normalizer") is not None:
        raise bad("tokenizers with a normalizer are not supported")

    def token_bytes(s) -> bytes:
        try:
            return bytes(_CHAR_TO_BYTE[c] for c in s)
        except (KeyError, TypeError):
            raise bad(f"token {s!r} is not byte-level encoded") from None

    def check_id(i) -> int:
        if not isinstance(i, int) or not 0 <= i < max_id:
            raise bad(f"token id {i!r} is not an int in [0, {max_id})")
        return i

    vocab = model.get("vocab") or {}
    if not isinstance(vocab, dict):
        raise bad("model.vocab must be an object")
    tokens: list[bytes | None] = [None] * (max(map(check_id, vocab.values()), default=-1) + 1)
    for s, i in vocab.items():
        tokens[i] = token_bytes(s)
    id_of = {t: i for i, t in enumerate(tokens) if t is not None}
    merges = []
    for m in model.get("merges") or []:
        parts = m.split(" ") if isinstance(m, str) else m
        if not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise bad(f"malformed merge {m!r}")
        try:
            merges.append(tuple(id_of[token_bytes(p)] for p in parts))
        except KeyError:
            raise bad(f"merge {m!r} names a token that is not in the vocabulary") from None
    specials = {}
    for t in doc.get("added_tokens") or []:
        if not isinstance(t, dict) or not isinstance(t.get("content"), str):
            raise bad(f"malformed added token {t!r}")
        specials[t["content"]] = check_id(t.get("id"))
    return {
        "tokens": tokens,
        "special_tokens": specials,
        "pattern": _pattern(doc.get("pre_tokenizer"), bad),
        "merges": merges,
        "ignore_merges": bool(model.get("ignore_merges", False)),
    }


def _pattern(pre, bad) -> str:
    def byte_level(p, use_regex: bool) -> bool:
        return (
            isinstance(p, dict)
            and p.get("type") == "ByteLevel"
            and not p.get("add_prefix_space", False)
            and bool(p.get("use_regex", True)) == use_regex
        )

    if byte_level(pre, True):
        return GPT2_PATTERN
    if isinstance(pre, dict) and pre.get("type") == "Sequence":
        seq = pre.get("pretokenizers") or []
        if (
            len(seq) == 2
            and isinstance(seq[0], dict)
            and seq[0].get("type") == "Split"
            and "Regex" in (seq[0].get("pattern") or {})
            and seq[0].get("behavior") == "Isolated"
            and not seq[0].get("invert", False)
            and byte_level(seq[1], False)
        ):
            return from_onig(seq[0]["pattern"]["Regex"])
    raise bad(
        f"unsupported pre-tokenizer {json.dumps(pre)[:200]}; supported are ByteLevel (no prefix "
        "space) and Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)]"
    )
