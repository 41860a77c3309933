"""The model, training step and KV-cache decoding run through the CUDA kernels as the model calls
them (its shapes, strides, dtypes under autocast), here on the CPU emulation: what a GPU run with
TINYGPT_CUDA_KERNELS=1 computes, checked against the plain PyTorch path."""

import math
import types

import pytest
import torch

import tinygpt.decode
import tinygpt.model
from tinygpt.model import GPT, GPTConfig
from tinygpt.ops import emulation, reference

pytestmark = pytest.mark.skipif(not emulation.available(), reason="tinygpt._cuda_emu not built")


def _emu_ops():
    """tinygpt.ops' signatures, computed by the emulated CUDA kernels, with their backwards."""
    E = emulation.ops()

    class RmsNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, eps):
            y, rstd = E.rms_norm(x.contiguous(), w, eps)
            ctx.save_for_backward(x.contiguous(), w, rstd)
            return y

        @staticmethod
        def backward(ctx, dy):
            x, w, rstd = ctx.saved_tensors
            dx, dw = E.rms_norm_backward(dy.contiguous(), x, w, rstd)
            return dx, dw, None

    class Rope(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, cos, sin):
            ctx.save_for_backward(cos, sin)
            return E.rope(x.contiguous(), cos.contiguous(), sin.contiguous())

        @staticmethod
        def backward(ctx, dy):
            cos, sin = ctx.saved_tensors
            return E.rope_backward(dy.contiguous(), cos.contiguous(), sin.contiguous()), None, None

    class Swiglu(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            a, b = a.contiguous(), b.contiguous()
            ctx.save_for_backward(a, b)
            return E.swiglu(a, b)

        @staticmethod
        def backward(ctx, dy):
            return E.swiglu_backward(dy.contiguous(), *ctx.saved_tensors)

    class Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, causal, scale):
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            out, lse = E.attention(q, k, v, causal, scale)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.causal, ctx.scale = causal, scale
            return out

        @staticmethod
        def backward(ctx, do):
            q, k, v, out, lse = ctx.saved_tensors
            return (*E.attention_backward(do.contiguous(), q, k, v, out, lse, ctx.causal, ctx.scale), None, None)

    class CrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, targets, ignore_index):
            logits = logits.contiguous()
            loss, lse = E.cross_entropy(logits, targets, ignore_index)
            ctx.save_for_backward(logits, targets, lse)
            ctx.ignore_index = ignore_index
            return loss

        @staticmethod
        def backward(ctx, g):
            logits, targets, lse = ctx.saved_tensors
            return E.cross_entropy_backward(g, logits, targets, lse, ctx.ignore_index), None, None

    return types.SimpleNamespace(
        rms_norm=lambda x, w, eps=1e-5: RmsNorm.apply(x, w, eps),
        rope=lambda x, cos, sin: Rope.apply(x, cos, sin),
        swiglu=lambda a, b: Swiglu.apply(a, b),
        attention=lambda q, k, v, *, causal=True, scale=None: Attention.apply(
            q, k, v, causal, 1 / math.sqrt(q.shape[-1]) if scale is None else scale),
        cross_entropy=lambda logits, targets, *, ignore_index=-100: CrossEntropy.apply(logits, targets, ignore_index),
        decode_attention=lambda qkv, kc, vc, pos, cos, sin, n_heads, scale=None: E.decode_attention(
            qkv, kc, vc, pos, cos, sin, n_heads, 1 / math.sqrt(kc.shape[-1]) if scale is None else scale),
    )


@pytest.fixture
def emu_model_ops(monkeypatch):
    ops = _emu_ops()
    real = tinygpt.model._ops

    def pick(fused):
        return ops if fused else real(False)

    monkeypatch.setattr(tinygpt.model, "_ops", pick)
    monkeypatch.setattr(tinygpt.decode, "_ops", pick)
    return ops


CFG = GPTConfig(vocab_size=97, dim=64, n_layers=2, n_heads=2, n_kv_heads=1, max_seq_len=40)  # head dim 32, GQA


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_training_step_through_the_cuda_kernels(emu_model_ops, autocast):
    torch.manual_seed(0)
    model = GPT(CFG)
    x = torch.randint(0, CFG.vocab_size, (2, 33))
    y = torch.randint(0, CFG.vocab_size, (2, 33))
    y[0, :5] = -100
    losses, grads = [], []
    for fused in (True, False):
        model.fused = fused
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(x, y)
        loss.backward()
        losses.append(loss.detach().float())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    tol = dict(rtol=2e-2, atol=2e-2) if autocast else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses[0], losses[1], **tol)
    for n in grads[1]:
        g0, g1 = grads[0][n], grads[1][n]
        if autocast:  # bf16 rounding differs op by op: compare the gradients as directions
            cos = torch.nn.functional.cosine_similarity(g0.flatten(), g1.flatten(), dim=0)
            assert cos > 0.99, (n, cos)
        else:
            torch.testing.assert_close(g0, g1, msg=n, **tol)


def test_kv_cache_decoding_through_the_cuda_kernels(emu_model_ops):
    torch.manual_seed(1)
    model = GPT(CFG).eval()
    prompts = torch.randint(0, CFG.vocab_size, (3, 6))
    dec = tinygpt.decode.Decoder(model, batch_size=3, dtype="fp32")
    assert dec.ops is emu_model_ops
    logits = dec.prefill(torch.arange(3), prompts)
    seq = prompts
    for step in range(5):
        with torch.no_grad():
            model.fused = False
            want = model(seq)[:, -1]
            model.fused = True
        torch.testing.assert_close(logits.float(), want.float(), rtol=1e-4, atol=1e-4)
        nxt = want.argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
        logits = dec.step(nxt, torch.ones(3, dtype=torch.bool))
