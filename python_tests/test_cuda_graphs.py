"""The decode-time CUDA kernels work under CUDA graph capture (no host synchronisation, no
allocation outside torch's allocator, all state read on the device): a captured decode step and
sampler replayed with new inputs give what eager calls give. GPU only: the emulation has no
graphs."""

import pytest
import torch

from conftest import _cuda_skip_reason
from tinygpt.ops import reference

pytestmark = pytest.mark.skipif(_cuda_skip_reason() is not None, reason=_cuda_skip_reason() or "")


def test_decode_attention_replays_in_a_cuda_graph():
    B, H, Hkv, D, S = 4, 4, 2, 64, 48
    dev = "cuda"
    g = torch.Generator(device=dev).manual_seed(0)
    qkv = torch.randn(B, (H + 2 * Hkv) * D, device=dev, generator=g)
    kc = torch.zeros(B, Hkv, S, D, device=dev)
    vc = torch.zeros_like(kc)
    cos, sin = reference.rope_tables(S, D, device=dev)
    pos = torch.tensor([0, 3, -1, 5], device=dev)
    # eager reference run on copies, step by step
    kc_ref, vc_ref = kc.clone(), vc.clone()
    torch.ops.tinygpt.decode_attention(qkv, kc, vc, pos, cos, sin, H, D ** -0.5)  # warm-up (and fills slot)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = torch.ops.tinygpt.decode_attention(qkv, kc, vc, pos, cos, sin, H, D ** -0.5)
    kc.zero_(), vc.zero_()
    for step in range(6):
        qkv.copy_(torch.randn(qkv.shape, device=dev, generator=g))
        pos.copy_(torch.tensor([step, step + 3, -1 if step % 2 else step, step + 5], device=dev))
        graph.replay()
        want = reference.decode_attention(qkv, kc_ref, vc_ref, pos, cos, sin, H, D ** -0.5)
        torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(kc, kc_ref, rtol=1e-5, atol=1e-5)


def test_sampling_replays_in_a_cuda_graph():
    from tinygpt.ops.sample import sample_with_uniform

    B, V = 8, 1000
    dev = "cuda"
    logits = torch.randn(B, V, device=dev)
    u = torch.rand(B, dtype=torch.float64, device=dev)
    sample_with_uniform(logits, u, top_p=0.9, top_k=50)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        ids = torch.ops.tinygpt.sample(logits, u, None, None, None, None, 0.8, 50, 0.9, 0.0)
    for _ in range(5):
        logits.copy_(torch.randn(B, V, device=dev) * 3)
        u.copy_(torch.rand(B, dtype=torch.float64, device=dev))
        graph.replay()
        eager = torch.ops.tinygpt.sample(logits, u, None, None, None, None, 0.8, 50, 0.9, 0.0)
        assert torch.equal(ids, eager)
