"""Byte-level BPE tokenizers: `Tokenizer` (encode, decode, train, save/load, tiktoken and Hugging
Face interchange) and the pre-tokenizer patterns.

Modules: `core` (Tokenizer, IncrementalDecoder), `trainer` (Tokenizer.train), `jsonfile` (the
tinygpt tokenizer file), `tiktoken_format` (tiktoken ranks and `.tiktoken` files, `save_ranks`),
`huggingface` (tokenizer.json), `patterns` and `limits`. Only `core` imports the others."""

from tinygpt.tokenizer.core import EOT, IncrementalDecoder, Tokenizer

__all__ = ["EOT", "IncrementalDecoder", "Tokenizer"]
