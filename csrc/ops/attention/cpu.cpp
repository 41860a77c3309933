// torch glue of the fused attention: schemas, input checks, threading over heads and query blocks.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "ops/attention/kernel_api.h"

namespace tinygpt {
namespace {

AttnShape check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention: q, k and v must be 4-D (B, H, T, D) / (B, Hkv, S, D), got ", q.sizes(), ", ", k.sizes(),
              ", ", v.sizes());
  for (const auto* t : {&q, &k, &v}) {
    TORCH_CHECK(t->device().is_cpu(), "attention: this kernel runs on CPU tensors, got ", t->device());
    TORCH_CHECK(t->scalar_type() == at::kFloat || t->scalar_type() == at::kBFloat16,
                "attention: dtype must be float32 or bfloat16, got ", t->scalar_type());
    TORCH_CHECK(t->is_contiguous(), "attention: inputs must be contiguous (call .contiguous())");
  }
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "attention: q, k and v must have one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
              v.scalar_type());
  TORCH_CHECK(k.sizes() == v.sizes(), "attention: k and v shapes differ: ", k.sizes(), " vs ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0), "attention: batch sizes differ: ", q.size(0), " vs ", k.size(0));
  TORCH_CHECK(q.size(3) == k.size(3), "attention: head dims differ: ", q.size(3), " vs ", k.size(3));
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0,
              "attention: query heads (", q.size(1), ") must be a multiple of key/value heads (", k.size(1), ")");
  TORCH_CHECK(std::isfinite(scale), "attention: scale must be finite, got ", scale);
  AttnShape s{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), static_cast<float>(scale), causal,
              q.scalar_type() == at::kBFloat16};
  if (s.B * s.H * s.T > 0) {
    TORCH_CHECK(s.S > 0, "attention: there are queries but no keys (S = 0)");
    TORCH_CHECK(s.D > 0, "attention: head dim must be positive");
    TORCH_CHECK(!causal || s.S >= s.T, "attention: causal attention needs at least as many keys (", s.S,
                ") as queries (", s.T, "): the queries are the last T positions");
  }
  return s;
}

std::tuple<at::Tensor, at::Tensor> attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 bool causal, double scale) {
  const AttnShape s = check_inputs(q, k, v, causal, scale);
  at::Tensor out = at::empty_like(q);
  at::Tensor lse = at::empty({s.B, s.H, s.T}, q.options().dtype(at::kFloat));
  const int64_t tasks = s.T > 0 ? s.B * s.H : 0;  // one per query head: its keys are loaded once
  if (tasks == 0) return {out, lse};
  auto fn = TINYGPT_DISPATCH(attn_fwd_task);
  const int64_t need = attn_fwd_scratch(s);
  const void *qp = q.data_ptr(), *kp = k.data_ptr(), *vp = v.data_ptr();
  void* op = out.data_ptr();
  float* lp = lse.data_ptr<float>();
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(need));
    for (int64_t t = begin; t < end; ++t) fn(s, qp, kp, vp, op, lp, t / s.H, t % s.H, scratch.data());
  });
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_backward_cpu(const at::Tensor& grad_out, const at::Tensor& q,
                                                                      const at::Tensor& k, const at::Tensor& v,
                                                                      const at::Tensor& out, const at::Tensor& lse,
                                                                      bool causal, double scale) {
  const AttnShape s = check_inputs(q, k, v, causal, scale);
  TORCH_CHECK(grad_out.sizes() == q.sizes() && out.sizes() == q.sizes(),
              "attention_backward: grad_out and out must have q's shape ", q.sizes());
  TORCH_CHECK(grad_out.scalar_type() == q.scalar_type() && out.scalar_type() == q.scalar_type(),
              "attention_backward: grad_out and out must have q's dtype");
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.dim() == 3 && lse.size(0) == s.B && lse.size(1) == s.H &&
                  lse.size(2) == s.T,
              "attention_backward: lse must be float32 of shape (B, H, T)");
  const at::Tensor go = grad_out.contiguous(), o = out.contiguous(), l = lse.contiguous();
  at::Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  const int64_t tasks = s.B * s.Hkv;
  if (s.B * s.H * s.T == 0 || s.S == 0) {
    dq.zero_(), dk.zero_(), dv.zero_();
    return {dq, dk, dv};
  }
  auto fn = TINYGPT_DISPATCH(attn_bwd_task);
  const int64_t need = attn_bwd_scratch(s);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(need));
    for (int64_t t = begin; t < end; ++t)
      fn(s, q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), go.data_ptr(), l.data_ptr<float>(),
         dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), t / s.Hkv, t % s.Hkv, scratch.data());
  });
  return {dq, dk, dv};
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("attention(Tensor q, Tensor k, Tensor v, bool causal, float scale) -> (Tensor, Tensor)");
  m.def(
      "attention_backward(Tensor grad_out, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse, bool causal, "
      "float scale) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("attention", &tinygpt::attention_cpu);
  m.impl("attention_backward", &tinygpt::attention_backward_cpu);
}
