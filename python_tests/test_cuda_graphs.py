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


def test_decoder_steps_replayed_as_a_cuda_graph_match_eager_steps():
    from tinygpt.decode import Decoder
    from tinygpt.model import GPT, GPTConfig
    from tinygpt.ops import cuda

    cuda.set_kernels_enabled(True)
    try:
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=101, dim=128, n_layers=2, n_heads=2, max_seq_len=64)).cuda().eval()
        prompts = torch.randint(0, 101, (3, 5))
        decs = [Decoder(model, 3, dtype="fp32", cuda_graph=g) for g in (True, False)]
        assert decs[0].cuda_graph and not decs[1].cuda_graph
        logits = [d.prefill(torch.arange(3), prompts) for d in decs]
        active = torch.tensor([True, False, True])
        for step in range(6):
            torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)
            nxt = logits[1].argmax(-1).cpu()
            logits = [d.step(nxt, active).clone() for d in decs]
            assert torch.equal(decs[0].lengths, decs[1].lengths)
    finally:
        cuda.set_kernels_enabled(None)


def test_cuda_graph_needs_the_cuda_kernels():
    from tinygpt.decode import Decoder
    from tinygpt.model import GPT, GPTConfig
    from tinygpt.ops import cuda

    cuda.set_kernels_enabled(False)
    try:
        model = GPT(GPTConfig(vocab_size=50, dim=64, n_layers=1, n_heads=2, max_seq_len=16)).cuda()
        with pytest.raises(ValueError, match="TINYGPT_CUDA_KERNELS"):
            Decoder(model, 2, cuda_graph=True)
        assert not Decoder(model, 2).cuda_graph
    finally:
        cuda.set_kernels_enabled(None)
