"""tinygpt: train tiny GPT language models on children's stories, fast, and make them tell stories."""

from tinygpt.threads import setup_cli_threads

setup_cli_threads()  # before torch starts its thread pool

import torch  # noqa: E402,F401  (loads libtorch, which the native extension links against)

try:
    from tinygpt import _C
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        f"tinygpt's native extension could not be loaded ({e}). If this is the source tree, build "
        "and install it first (pip install --no-build-isolation .) and run from another directory, "
        "or check that the installed torch is the one tinygpt was built against."
    ) from e

from tinygpt.tokenizer import Tokenizer  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__", "train"]

_LAZY = {"train", "checkpoint", "evaluate", "generate", "model", "shards", "prepare", "stories", "data", "ops"}


def __getattr__(name):
    # Submodules load on first use, so `import tinygpt` stays light; `tinygpt.train(...)` trains.
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"tinygpt.{name}")
    raise AttributeError(f"module 'tinygpt' has no attribute {name!r}")
