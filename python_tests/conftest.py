import os
import sys

import pytest

# Tests exercise the installed package (it has the built extension), never the bare source tree,
# which `python -m pytest` from the repository root would otherwise put first on sys.path.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]

SAMPLE = os.path.join(ROOT, "..", "shared", "data", "tinystories", "TinyStories-train-sample.txt")


@pytest.fixture(scope="session")
def sample_path():
    if not os.path.isfile(SAMPLE):
        pytest.skip("TinyStories sample not found at ../shared/data (only CI and dev machines have it)")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_text(sample_path):
    with open(sample_path, encoding="utf-8") as f:
        return f.read()
