"""tinygpt: train tiny GPT language models on children's stories, fast, and make them tell stories.

Every name here loads on first use, so `import tinygpt` is cheap and no submodule import depends
on the order in which others were loaded."""

import importlib

from tinygpt import _aliases
from tinygpt.threads import setup_cli_threads

setup_cli_threads()  # before torch starts its thread pool
_aliases.install()

__version__ = "0.1.0"
__all__ = ["Tokenizer", "__version__", "train"]

# public name -> (module, attribute); attribute None: the module itself
_NAMES = {
    "Tokenizer": ("tinygpt.tokenizer", "Tokenizer"),
    "train": ("tinygpt.training", "train"),
    "_C": ("tinygpt._native", "_C"),
    **{name: (f"tinygpt.{name}", None) for name in (
        "data", "decode", "demo", "export", "generate", "model", "ops", "precision", "tokenizer", "training")},
}


def __getattr__(name):
    if name in _NAMES:
        module, attr = _NAMES[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    if name in _aliases.MOVED:
        return _aliases.load(f"tinygpt.{name}")
    raise AttributeError(f"module 'tinygpt' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_NAMES, *_aliases.MOVED})
