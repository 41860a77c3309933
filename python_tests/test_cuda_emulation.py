"""The CPU emulation of CUDA that the CUDA kernels' tests run on (csrc/cuda_emu): each feature
gives what a GPU gives, and misuse that a GPU would hang on or leave undefined fails loudly."""

import numpy as np
import pytest
import torch

from tinygpt.ops import emulation

selftest = pytest.importorskip("tinygpt._cuda_emu").selftest


def test_thread_and_block_indices_cover_the_grid_once():
    grid, block = (3, 2, 2), (8, 4, 2)
    out = np.array(selftest.ids(list(grid), list(block)))
    nb, nt = np.prod(grid), np.prod(block)
    assert sorted(out.tolist()) == sorted(b * 10000 + t for b in range(nb) for t in range(nt))


@pytest.mark.parametrize("block", [32, 64, 256])
def test_block_barrier_and_shared_memory(block):
    x = np.random.default_rng(0).integers(-50, 50, 5 * block).astype(np.float32)
    out = np.array(selftest.block_sum(x.tolist(), block, False))
    np.testing.assert_array_equal(out, x.reshape(5, block).sum(1))


def test_a_missing_barrier_shows_as_wrong_results():
    # The threads of a block run in a shuffled order between barriers, so a reduction missing
    # its barrier reads partial sums that are not there yet.
    x = np.ones(64 * 256, np.float32)
    out = np.array(selftest.block_sum(x.tolist(), 256, True))
    assert (out != 256).any()


def test_warp_shuffles_and_votes():
    v = np.arange(64) * 3 % 37
    out = np.array(selftest.warp(v.tolist())).reshape(64, 8)
    for t in range(64):
        w, lane = t // 32, t % 32
        warp = v[w * 32:(w + 1) * 32]
        assert out[t, 0] == warp.sum()
        assert out[t, 1] == warp[3]
        assert out[t, 2] == (warp[lane + 1] if lane < 31 else warp[lane])
        assert out[t, 3] == (warp[lane - 2] if lane >= 2 else warp[lane])
        assert out[t, 4] & 0xFFFFFFFF == sum(1 << i for i in range(32) if warp[i] & 1)
        assert out[t, 5] == int((warp > 30).any())
        assert out[t, 6] == 1
        assert out[t, 7] == warp[(lane & ~7) | ((lane ^ 4) & 7)]


def test_atomics():
    x = np.arange(256, dtype=np.float32) / 4
    fsum, isum, imax, cas = selftest.atomics(x.tolist(), 64)
    assert fsum == pytest.approx(x.sum()) and isum == 256 and imax == 255 and cas == 256


@pytest.mark.parametrize("half", [True, False], ids=["fp16", "bf16"])
@pytest.mark.parametrize("b_col_major", [False, True], ids=["b_row", "b_col"])
@pytest.mark.parametrize("c_col_major", [False, True], ids=["c_row", "c_col"])
def test_wmma_matches_a_matmul(half, b_col_major, c_col_major):
    M, N, K = 32, 48, 64
    g = torch.Generator().manual_seed(1)
    dt = torch.float16 if half else torch.bfloat16
    a = torch.randn(M, K, generator=g).to(dt).float()
    b = torch.randn(K, N, generator=g).to(dt).float()
    b_in = b.t().contiguous() if b_col_major else b
    c = torch.tensor(selftest.wmma(a.flatten().tolist(), b_in.flatten().tolist(), M, N, K, half, b_col_major, c_col_major))
    c = c.view(N, M).t() if c_col_major else c.view(M, N)
    torch.testing.assert_close(c, (a.double() @ b.double()).float(), rtol=1e-5, atol=1e-4)


def test_wmma_layout_is_opaque():
    # Reusing an accumulator's elements as an operand depends on one GPU's register layout; the
    # emulation's layouts differ per fragment kind, so such a kernel computes garbage here.
    c = torch.randn(16, 16).half().float()
    b = torch.eye(16)
    out = torch.tensor(selftest.wmma_layout_abuse(c.flatten().tolist(), b.flatten().tolist())).view(16, 16)
    assert not torch.allclose(out, c, atol=1e-2)


def test_wmma_store_is_not_a_memory_fence():
    # A GPU lane may read what other lanes stored through store_matrix_sync only after a
    # __syncwarp; the emulation lets each lane write its part after the lanes meet, so reading
    # without the __syncwarp sees unwritten (NaN-poisoned) shared memory.
    assert selftest.wmma_store_then_read(True) == [256.0] * 32
    assert any(v != 256.0 for v in selftest.wmma_store_then_read(False))


def test_dynamic_shared_memory_and_its_limit():
    n = 1000
    assert selftest.dynamic_smem(n, False) == [float(sum(range(n)))] * 64
    n = 20000  # 80 KB: needs cudaFuncSetAttribute first
    with pytest.raises(RuntimeError, match="shared memory"):
        selftest.dynamic_smem(n, False)
    assert selftest.dynamic_smem(n, True)[0] == pytest.approx(sum(range(n)), rel=1e-4)


@pytest.mark.parametrize("what, message", [
    ("divergent_barrier", "__syncthreads not reached by every thread"),
    ("divergent_shuffle", "diverged lanes"),
    ("partial_mask", "full-warp masks"),
    ("partial_warp", "partial warp"),
    ("misaligned_wmma", "32-byte aligned"),
    ("too_much_smem", "shared memory"),
    ("huge_block", "threads"),
    ("trap", "__trap"),
    ("smem_overflow", "outside the 64 bytes of dynamic shared memory"),
])
def test_misuse_fails_loudly(what, message):
    with pytest.raises(RuntimeError, match=message):
        selftest.misuse(what)
    # and the emulation is usable afterwards
    assert selftest.block_sum([1.0] * 64, 64, False) == [64.0]


def test_emulated_ops_have_the_cuda_ops_schemas():
    E = emulation.ops()
    for name in ("rms_norm", "rms_norm_backward"):
        assert str(getattr(E, name).default._schema).split("::")[1] == \
            str(getattr(torch.ops.tinygpt, name).default._schema).split("::")[1]
