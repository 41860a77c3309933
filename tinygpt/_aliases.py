"""The module paths of tinygpt 0.1's flat layout, kept working for one release.

`import tinygpt.checkpoint` (or `from tinygpt.shards import open_shards`) still works and gives the
module at its new home, with a DeprecationWarning naming it; the old names go in tinygpt 0.3."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# old name (under tinygpt.) -> new module
MOVED = {
    "checkpoint": "tinygpt.training.checkpoint",
    "evaluate": "tinygpt.training.evaluate",
    "plot": "tinygpt.training.plot",
    "train": "tinygpt.training",
    "stories": "tinygpt.data.stories",
    "story_words": "tinygpt.data.story_words",
    "prepare": "tinygpt.data.prepare",
    "shards": "tinygpt.data.shards",
    "llama2c": "tinygpt.export.llama2c",
    "patterns": "tinygpt.tokenizer.patterns",
    "huggingface": "tinygpt.tokenizer.huggingface",
}


class _CallableTraining(types.ModuleType):
    """The old `tinygpt.train` was a module that could be called; so is its alias."""

    def __init__(self, target: types.ModuleType):
        super().__init__("tinygpt.train", target.__doc__)
        self._target = target

    def __getattr__(self, name):
        return getattr(self._target, name)

    def __call__(self, *args, **kwargs):
        return self._target.train(*args, **kwargs)


def load(old: str) -> types.ModuleType:
    """The module that `old` (e.g. "tinygpt.checkpoint") now is, with a DeprecationWarning."""
    new = MOVED[old.removeprefix("tinygpt.")]
    warnings.warn(f"{old} moved to {new}; the old name goes in tinygpt 0.3", DeprecationWarning, stacklevel=3)
    module = importlib.import_module(new)
    return _CallableTraining(module) if old == "tinygpt.train" else module


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        return load(spec.name)

    def exec_module(self, module):
        pass  # the target module ran when it was imported


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix == "tinygpt" and name in MOVED:
            return importlib.util.spec_from_loader(fullname, _Loader())
        return None


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
