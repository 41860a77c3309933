"""Byte-level BPE tokenizers: `Tokenizer` (encode, decode, train, save/load, tiktoken and Hugging
Face interchange) and the pre-tokenizer patterns.

Modules: `core` (Tokenizer, IncrementalDecoder), `trainer` (Tokenizer.train), `jsonfile` (the
tinygpt tokenizer file), `tiktoken_format` (tiktoken ranks and `.tiktoken` files, `save_ranks`),
`huggingface` (tokenizer.json), `specials` (special tokens in text, `DisallowedSpecialError`),
`patterns` and `limits`. Only `core` imports the others; they import at most `patterns` and
`limits`."""

from tinygpt.tokenizer.core import EOT, IncrementalDecoder, Tokenizer
from tinygpt.tokenizer.specials import DisallowedSpecialError

__all__ = ["EOT", "DisallowedSpecialError", "IncrementalDecoder", "Tokenizer"]
