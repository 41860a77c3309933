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


# ---- CUDA kernels: the same test cases on the CPU emulation and, where present, on a GPU ----

class CudaBackend:
    """Where a CUDA test case runs: `ops` is torch.ops.tinygpt_emu (the kernels on the CPU
    emulation, CPU tensors) or torch.ops.tinygpt (the real kernels, CUDA tensors)."""

    def __init__(self, name):
        import torch

        self.name = name
        if name == "emu":
            from tinygpt.ops import emulation

            self.ops, self.device = emulation.ops(), torch.device("cpu")
        else:
            self.ops, self.device = torch.ops.tinygpt, torch.device("cuda")

    def __repr__(self):
        return self.name


def _cuda_skip_reason():
    import torch

    if not _C.with_cuda:
        return "tinygpt was built without CUDA kernels (no CUDA torch or nvcc at build time)"
    if not torch.cuda.is_available():
        return "no CUDA GPU present"
    return None


@pytest.fixture(params=["emu", "cuda"])
def cuda_backend(request):
    """Runs a CUDA test case on the emulation (always; CI has no GPU) and on a real GPU (skipped,
    with the reason, where there is none)."""
    if request.param == "cuda":
        reason = _cuda_skip_reason()
        if reason:
            pytest.skip(reason)
    return CudaBackend(request.param)


def assert_flash_rule(out, ref, lowp, *, factor=2.0, atol=1e-5, what="output"):
    """FlashAttention's correctness rule: the error of `out` against the fp32 (or float64)
    reference `ref` is at most `factor` times the error of PyTorch's own computation in the
    low precision (`lowp`), plus `atol` for values that are exact there."""
    import torch

    ref = ref.double()
    err = (out.double() - ref).abs().max().item()
    base = (lowp.double() - ref).abs().max().item()
    assert err <= factor * base + atol, f"{what}: max error {err:.3g} > {factor} x {base:.3g} (torch's own) + {atol}"


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory):
    """A tiny trained run for the server's tests (trained once per test session)."""
    from serve_helpers import trained_run

    return trained_run(tmp_path_factory)
