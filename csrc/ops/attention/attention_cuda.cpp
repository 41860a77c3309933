// torch glue of the fused attention CUDA kernels (attention/cuda.cu); see common/cuda_glue.h.
// The input checks are the CPU op's (attention/cpu.cpp), plus the head dims the kernels support.
#include <climits>
#include <cmath>
#include <tuple>

#include "ops/attention/cuda.h"
#include "common/cuda_glue.h"

namespace tinygpt::cuda {
namespace {

struct Shape {
  int64_t B, H, Hkv, T, S, D;
  DType dt;
};

Shape check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                   double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
              ": q, k and v must be 4-D (B, H, T, D) / (B, Hkv, S, D), got ", q.sizes(), ", ", k.sizes(), ", ",
              v.sizes());
  check_device(op, q, k, v);
  const DType dt = dtype_of(op, q);
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
              ": q, k and v must have one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  TORCH_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous(), op,
              ": inputs must be contiguous (call .contiguous())");
  TORCH_CHECK(k.sizes() == v.sizes(), op, ": k and v shapes differ: ", k.sizes(), " vs ", v.sizes());
  TORCH_CHECK(q.size(0) == k.size(0), op, ": batch sizes differ: ", q.size(0), " vs ", k.size(0));
  TORCH_CHECK(q.size(3) == k.size(3), op, ": head dims differ: ", q.size(3), " vs ", k.size(3));
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, op, ": query heads (", q.size(1),
              ") must be a multiple of key/value heads (", k.size(1), ")");
  TORCH_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  const Shape s{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), dt};
  TORCH_CHECK(attention_head_dim_supported(s.D), op, ": the CUDA kernels support head dims 32, 64, 80, 96 and 128, got ",
              s.D);
  TORCH_CHECK(s.T < INT_MAX && s.S < INT_MAX && s.H < 65536 && s.B < 65536, op, ": tensor too large for the kernels");
  if (s.B * s.H * s.T > 0) {
    TORCH_CHECK(s.S > 0, op, ": there are queries but no keys (S = 0)");
    TORCH_CHECK(!causal || s.S >= s.T, op, ": causal attention needs at least as many keys (", s.S,
                ") as queries (", s.T, "): the queries are the last T positions");
  }
  return s;
}

std::tuple<at::Tensor, at::Tensor> attention_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 bool causal, double scale) {
  const char* op = "attention";
  const Shape s = check_inputs(op, q, k, v, causal, scale);
  c10::OptionalDeviceGuard guard(q.device());
  at::Tensor out = at::empty_like(q);
  at::Tensor lse = at::empty({s.B, s.H, s.T}, q.options().dtype(at::kFloat));
  if (s.B * s.H * s.T == 0) return {out, lse};
  check_launch(op, attention_forward(s.dt, q.const_data_ptr(), k.const_data_ptr(), v.const_data_ptr(),
                                     out.mutable_data_ptr(), lse.mutable_data_ptr<float>(), s.B, s.H, s.Hkv, s.T,
                                     s.S, s.D, causal, static_cast<float>(scale), stream_for(q)));
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> attention_bwd(const at::Tensor& grad_out, const at::Tensor& q,
                                                             const at::Tensor& k, const at::Tensor& v,
                                                             const at::Tensor& out, const at::Tensor& lse,
                                                             bool causal, double scale) {
  const char* op = "attention_backward";
  const Shape s = check_inputs(op, q, k, v, causal, scale);
  check_device(op, q, grad_out, out, lse);
  TORCH_CHECK(grad_out.sizes() == q.sizes() && out.sizes() == q.sizes(), op,
              ": grad_out and out must have q's shape ", q.sizes());
  TORCH_CHECK(grad_out.scalar_type() == q.scalar_type() && out.scalar_type() == q.scalar_type(), op,
              ": grad_out and out must have q's dtype");
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.dim() == 3 && lse.size(0) == s.B && lse.size(1) == s.H &&
                  lse.size(2) == s.T,
              op, ": lse must be float32 of shape (B, H, T)");
  c10::OptionalDeviceGuard guard(q.device());
  const at::Tensor go = grad_out.contiguous(), o = out.contiguous(), l = lse.contiguous();
  at::Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
  if (s.B * s.H * s.T == 0 || s.S == 0) {
    dq.zero_(), dk.zero_(), dv.zero_();
    return {dq, dk, dv};
  }
  at::Tensor dsum = at::empty({s.B, s.H, s.T}, q.options().dtype(at::kFloat));
  check_launch(op, attention_backward(s.dt, go.const_data_ptr(), q.const_data_ptr(), k.const_data_ptr(),
                                      v.const_data_ptr(), o.const_data_ptr(), l.const_data_ptr<float>(),
                                      dsum.mutable_data_ptr<float>(), dq.mutable_data_ptr(), dk.mutable_data_ptr(),
                                      dv.mutable_data_ptr(), s.B, s.H, s.Hkv, s.T, s.S, s.D, causal,
                                      static_cast<float>(scale), stream_for(q)));
  return {dq, dk, dv};
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("attention", &tinygpt::cuda::attention_fwd);
  m.impl("attention_backward", &tinygpt::cuda::attention_bwd);
}
