"""Byte-level BPE tokenizers: `Tokenizer` (encode, decode, train, save/load, tiktoken and Hugging
Face interchange) and the pre-tokenizer patterns."""

from tinygpt.tokenizer.core import EOT, IncrementalDecoder, Tokenizer

__all__ = ["EOT", "IncrementalDecoder", "Tokenizer"]
