import os
import sys

# Spinning OpenMP threads, as the `tinygpt` command uses (set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import pytest  # noqa: E402

# Tests exercise the installed package (it has the built extension), never the bare source tree,
# which `python -m pytest` from the repository root would otherwise put first on sys.path.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]

from tinygpt import _C  # noqa: E402

# The CPU kernels' instruction-set builds this machine can run, slowest first.
SUPPORTED_ISAS = ["base", "avx2", "avx512"][: ["base", "avx2", "avx512"].index(_C._cpu_isa_supported()) + 1]


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs the test once on each instruction-set path of the kernels, then restores the choice."""
    before = _C._cpu_isa()
    request.addfinalizer(lambda: _C._set_cpu_isa(before))
    _C._set_cpu_isa(request.param)
    return request.param


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
