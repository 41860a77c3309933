"""Every CUDA kernel source compiles with nvcc for the GPUs the build targets (sm_80, sm_90),
and every piece of CUDA torch glue compiles as it does in a CUDA build, on machines without a
GPU. CI has nvcc: there a missing nvcc is a failure, elsewhere a skip."""

import glob
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch.utils.cpp_extension

from conftest import ROOT

CSRC = os.path.join(ROOT, "csrc")
CU = sorted(glob.glob(os.path.join(CSRC, "ops", "*", "cuda.cu")))
GLUE = sorted(glob.glob(os.path.join(CSRC, "ops", "*", "*_cuda.cpp")))


def _nvcc():
    nvcc = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)
    if nvcc is None:
        if os.environ.get("CI"):
            pytest.fail("nvcc not found: CI must compile the CUDA kernels")
        pytest.skip("nvcc not found")
    return nvcc


def _archs():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r'set\(TINYGPT_CUDA_ARCHS "([0-9;]+)"', f.read())
    return m.group(1).split(";")


def test_the_build_targets_sm80_and_sm90():
    assert {"80", "90"} <= set(_archs())


def test_every_kernel_has_cuda_source_glue_and_launchers():
    kernels = {os.path.basename(os.path.dirname(p)) for p in CU}
    assert {"attention", "decode_attention", "sample", "rms_norm", "rope", "swiglu", "cross_entropy"} <= kernels
    for k in kernels:
        assert os.path.exists(os.path.join(CSRC, "ops", k, "cuda.h")), k
        assert os.path.exists(os.path.join(CSRC, "ops", k, f"{k}_cuda.cpp")), k


def test_kernel_sources_include_only_cuda_headers():
    for path in CU:
        with open(path) as f:
            for inc in re.findall(r'#include [<"]([^>"]+)[>"]', f.read()):
                assert not inc.startswith(("torch", "ATen", "c10")), f"{path} includes {inc}"


def _compile(args):
    r = subprocess.run(args, capture_output=True, text=True)
    return args, r.returncode, r.stdout + r.stderr


@pytest.mark.skipif(not CU, reason="no CUDA sources")
def test_every_cuda_source_compiles_for_sm80_and_sm90(tmp_path):
    nvcc = _nvcc()
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in _archs()]
    jobs = [[nvcc, "-std=c++17", "-O3", *gencode, "-I", CSRC, "-c", p, "-o", str(tmp_path / (os.path.basename(os.path.dirname(p)) + ".o"))]
            for p in CU]
    with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as ex:
        results = list(ex.map(_compile, jobs))
    failed = [f"{' '.join(a)}\n{out}" for a, rc, out in results if rc != 0]
    assert not failed, "\n\n".join(failed)
    warned = [f"{a[-3]}:\n{out}" for a, rc, out in results if "warning" in out.lower()]
    assert not warned, "nvcc warnings:\n" + "\n".join(warned)


@pytest.mark.skipif(not GLUE, reason="no CUDA glue")
def test_cuda_glue_compiles_as_in_a_cuda_build():
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    inc = [f"-I{p}" for p in torch.utils.cpp_extension.include_paths()]
    jobs = [[cxx, "-std=c++20", "-fsyntax-only", "-Wall", "-I", CSRC, *inc, p] for p in GLUE]
    with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as ex:
        results = list(ex.map(_compile, jobs))
    failed = [f"{a[-1]}:\n{out}" for a, rc, out in results if rc != 0 or "warning" in out]
    assert not failed, "\n\n".join(failed)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
