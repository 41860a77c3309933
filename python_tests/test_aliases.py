"""The flat layout's module paths (tinygpt 0.1) keep working for one release, with a warning."""

import os
import subprocess
import sys

import pytest

from tinygpt import _aliases


def assert_prints_ok(code: str) -> None:
    # A fresh interpreter: the alias must work as a user's first import of the old name. It runs
    # outside the checkout so that it imports the installed package, not the source tree.
    res = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, timeout=120, cwd=os.path.dirname(sys.executable))
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("old,new", sorted(_aliases.MOVED.items()))
def test_old_module_path_gives_the_new_module_with_a_warning(old, new):
    code = f"""
import importlib, warnings
import tinygpt
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import tinygpt.{old} as mod
assert any(issubclass(x.category, DeprecationWarning) and "{new}" in str(x.message) for x in w), w
target = importlib.import_module("{new}")
names = [n for n in vars(target) if not n.startswith("_")]
assert names and all(getattr(mod, n) is getattr(target, n) for n in names)
print("ok")
"""
    assert_prints_ok(code)


def test_from_import_of_an_old_path_works():
    assert_prints_ok("import warnings; warnings.simplefilter('ignore')\n"
              "from tinygpt.shards import open_shards; from tinygpt.data.shards import open_shards as o\n"
              "from tinygpt.checkpoint import load_run; from tinygpt.training.checkpoint import load_run as l\n"
              "assert open_shards is o and load_run is l; print('ok')")


def test_old_train_module_is_still_callable():
    assert_prints_ok("import warnings; warnings.simplefilter('ignore')\n"
              "import tinygpt, tinygpt.train\n"
              "from tinygpt.training import TrainConfig, train\n"
              "assert tinygpt.train.TrainConfig is TrainConfig and callable(tinygpt.train)\n"
              "assert tinygpt.train.train is train; print('ok')")


def test_public_names_need_no_deprecated_path():
    # The package's own code never goes through an alias: importing every public name warns nothing.
    assert_prints_ok("import tinygpt\n"
              "tinygpt.Tokenizer, tinygpt.train, tinygpt.data.iter_stories, tinygpt.export.export\n"
              "import tinygpt.cli, tinygpt.demo, tinygpt.generate, tinygpt.decode, tinygpt.model, tinygpt.ops\n"
              "import tinygpt.training.loop, tinygpt.data.prepare, tinygpt.export.hf, tinygpt.export.llama2c\n"
              "print('ok')")


def test_an_unknown_name_is_an_attribute_error():
    import tinygpt

    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        tinygpt.nonsense
