"""tinygpt: train tiny GPT language models on children's stories, fast, and make them tell stories."""

import torch  # noqa: F401  (loads libtorch, which the native extension links against)

from tinygpt import _C  # noqa: E402
from tinygpt.tokenizer import Tokenizer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__"]
