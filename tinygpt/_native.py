"""The native extension, `tinygpt._C`: every module reaches it as `from tinygpt._native import _C`.

torch is imported first because the extension links against libtorch and registers its ops in
torch's dispatcher when it loads."""

import importlib

import torch  # noqa: F401  (loads libtorch, which the native extension links against)

try:
    _C = importlib.import_module("tinygpt._C")
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        f"tinygpt's native extension could not be loaded ({e}). If this is the source tree, build "
        "and install it first (pip install --no-build-isolation .) and run from another directory, "
        "or check that the installed torch is the one tinygpt was built against."
    ) from e
