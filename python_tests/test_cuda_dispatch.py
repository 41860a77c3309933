"""Which implementation `tinygpt.ops` picks per device: the kernels on the CPU; on CUDA the
kernels only when enabled (TINYGPT_CUDA_KERNELS=1), else the plain PyTorch ops."""

import sys
import warnings

import pytest
import torch

import tinygpt.ops
from tinygpt import _C
from tinygpt.ops import cuda, reference


@pytest.fixture
def restore():
    yield
    cuda.set_kernels_enabled(None)


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)])
def test_environment_switch(monkeypatch, restore, value, on):
    monkeypatch.setenv(cuda.ENV, value)
    monkeypatch.setattr(cuda, "_warned", True)
    assert cuda.kernels_enabled() == (on and _C.with_cuda)


def test_override_wins_over_the_environment(monkeypatch, restore):
    monkeypatch.setenv(cuda.ENV, "1")
    cuda.set_kernels_enabled(False)
    assert not cuda.kernels_enabled()
    cuda.set_kernels_enabled(None)
    monkeypatch.delenv(cuda.ENV)
    assert not cuda.kernels_enabled()


@pytest.mark.skipif(_C.with_cuda, reason="this build has CUDA kernels")
def test_asking_for_kernels_a_build_lacks_warns_once(monkeypatch, restore):
    monkeypatch.setattr(cuda, "_warned", False)
    cuda.set_kernels_enabled(True)
    with pytest.warns(UserWarning, match="built without CUDA kernels"):
        assert not cuda.kernels_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cuda.kernels_enabled()


def test_cpu_and_meta_tensors_always_use_the_kernels(restore):
    cuda.set_kernels_enabled(False)
    assert cuda.use_kernel(torch.empty(1)) and cuda.use_kernel(torch.empty(1, device="meta"))


def test_off_the_kernels_every_op_gives_the_reference_result(monkeypatch):
    # What CUDA tensors get by default, exercised on CPU tensors by routing them the same way.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 3, 32, generator=g)
    cos, sin = reference.rope_tables(5, 32)
    logits = torch.randn(6, 50, generator=g)
    targets = torch.randint(0, 50, (6,), generator=g)
    w = torch.randn(32, generator=g)
    q = torch.randn(1, 2, 7, 32, generator=g)
    cases = {
        "rms_norm": lambda m: m.rms_norm(x, w),
        "rope": lambda m: m.rope(x, cos, sin),
        "swiglu": lambda m: m.swiglu(x, x * 2),
        "cross_entropy": lambda m: m.cross_entropy(logits, targets),
        "attention": lambda m: m.attention(q, q, q, causal=True),
    }
    for name, f in cases.items():
        fused = f(tinygpt.ops)
        with monkeypatch.context() as m:
            for mod in ("rms_norm", "rope", "swiglu", "cross_entropy", "attention"):
                m.setattr(sys.modules[f"tinygpt.ops.{mod}"], "use_kernel", lambda t: False)
            routed = f(tinygpt.ops)
        torch.testing.assert_close(routed, f(reference), msg=name)
        torch.testing.assert_close(routed, fused, rtol=1e-4, atol=1e-5, msg=name)


def test_off_the_kernels_sampling_draws_the_same_ids(monkeypatch):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 300, generator=g) * 3
    u = torch.rand(64, dtype=torch.float64, generator=g)
    settings = dict(temperature=0.8, top_k=40, top_p=0.9, min_p=0.01)
    kernel = tinygpt.ops.sample_with_uniform(logits, u, **settings)
    monkeypatch.setattr(sys.modules["tinygpt.ops.sample"], "use_kernel", lambda t: False)
    routed = tinygpt.ops.sample_with_uniform(logits, u, **settings)
    assert (routed == kernel).float().mean() > 0.98  # equal but for u within rounding of a boundary
    torch.testing.assert_close(tinygpt.ops.sample_probs(logits, **settings), reference.sample_probs(logits, **settings))
    with pytest.raises(ValueError, match="top_p"):
        tinygpt.ops.sample_probs(logits, top_p=2.0)


@pytest.mark.parametrize("D, padded", [(72, 80), (48, 64), (16, 32)])
def test_padding_the_head_dim_changes_nothing(D, padded):
    # How CUDA serves head dims its kernel is not built for (run here through the CPU kernel).
    from tinygpt.ops.attention import padded_attention

    g = torch.Generator().manual_seed(D)
    q, k, v = (torch.randn(2, 4, 9, D, generator=g, requires_grad=True) for _ in range(3))
    do = torch.randn(2, 4, 9, D, generator=g)
    want = tinygpt.ops.attention(q, k, v, causal=True)
    grads = torch.autograd.grad(want, (q, k, v), do)
    got = padded_attention(q, k, v, padded, causal=True, scale=D ** -0.5)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(torch.autograd.grad(got, (q, k, v), do), grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_decoder_cuda_graphs_only_on_cuda_with_the_kernels():
    from tinygpt.decode import Decoder
    from tinygpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=50, dim=64, n_layers=1, n_heads=2, max_seq_len=16))
    assert not Decoder(model, 2).cuda_graph
    with pytest.raises(ValueError, match="cuda_graph needs the model on a CUDA device"):
        Decoder(model, 2, cuda_graph=True)
