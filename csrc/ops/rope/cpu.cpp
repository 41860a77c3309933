// torch glue of the fused rotary embedding (kernels in rope/kernel.h): schemas, checks, threading.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "ops/rope/kernel_api.h"

namespace tinygpt {
namespace {

at::Tensor rope_impl(const char* op, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     bool inverse) {
  const char* xn = inverse ? "dy" : "x";
  TORCH_CHECK(x.device().is_cpu() && cos.device().is_cpu() && sin.device().is_cpu(), op,
              ": the CPU kernel needs CPU tensors, got ", xn, " on ", x.device(), ", cos on ", cos.device(),
              " and sin on ", sin.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, op, ": ", xn,
              " must be float32 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat, op,
              ": cos and sin must be float32, got ", cos.scalar_type(), " and ", sin.scalar_type());
  TORCH_CHECK(x.dim() == 4, op, ": ", xn, " must have shape (B, T, H, D), got ", x.sizes());
  const int64_t T = x.size(1), H = x.size(2), D = x.size(3);
  TORCH_CHECK(D % 2 == 0, op, ": the head size D must be even, got ", D);
  TORCH_CHECK(cos.dim() == 2 && cos.size(1) == D / 2, op, ": cos must have shape (T, D/2) = (", T, ", ",
              D / 2, "), got ", cos.sizes());
  TORCH_CHECK(sin.sizes() == cos.sizes(), op, ": sin must have cos's shape ", cos.sizes(), ", got ",
              sin.sizes());
  TORCH_CHECK(cos.size(0) >= T, op, ": the cos/sin tables have ", cos.size(0),
              " positions, fewer than the sequence length T = ", T);
  TORCH_CHECK(x.is_contiguous(), op, ": ", xn, " must be contiguous");
  TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous(), op, ": cos and sin must be contiguous");
  at::Tensor y = at::empty_like(x);
  if (y.numel() == 0) return y;
  const int64_t rows = x.size(0) * T;
  const int64_t grain = std::max<int64_t>(1, 16384 / (H * D));
  const float* cp = cos.const_data_ptr<float>();
  const float* sp = sin.const_data_ptr<float>();
  if (x.scalar_type() == at::kBFloat16) {
    auto xp = static_cast<const uint16_t*>(x.const_data_ptr());
    auto yp = static_cast<uint16_t*>(y.mutable_data_ptr());
    auto fn = TINYGPT_DISPATCH(rope_rows_bf16);
    at::parallel_for(0, rows, grain, [&](int64_t b, int64_t e) { fn(xp, cp, sp, yp, b, e, T, H, D, inverse); });
  } else {
    const float* xp = x.const_data_ptr<float>();
    float* yp = y.mutable_data_ptr<float>();
    auto fn = TINYGPT_DISPATCH(rope_rows_f32);
    at::parallel_for(0, rows, grain, [&](int64_t b, int64_t e) { fn(xp, cp, sp, yp, b, e, T, H, D, inverse); });
  }
  return y;
}

at::Tensor rope_cpu(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_impl("rope", x, cos, sin, false);
}

at::Tensor rope_backward_cpu(const at::Tensor& dy, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_impl("rope_backward", dy, cos, sin, true);
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("rope(Tensor x, Tensor cos, Tensor sin) -> Tensor");
  m.def("rope_backward(Tensor dy, Tensor cos, Tensor sin) -> Tensor");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("rope", &tinygpt::rope_cpu);
  m.impl("rope_backward", &tinygpt::rope_backward_cpu);
}
