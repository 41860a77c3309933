// torch glue of the fused RMSNorm (kernels in rms_norm/kernel.h): schemas, checks, threading.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "ops/rms_norm/kernel_api.h"

namespace tinygpt {
namespace {

// About 16K elements per task: large enough that the thread pool's cost vanishes.
int64_t grain_rows(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }

bool is_bf16(const at::Tensor& t) { return t.scalar_type() == at::kBFloat16; }

void check_x_weight(const char* op, const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), op,
              ": the CPU kernel needs CPU tensors, got x on ", x.device(), " and weight on ",
              weight.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, op,
              ": x must be float32 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(weight.scalar_type() == at::kFloat || weight.scalar_type() == x.scalar_type(), op,
              ": weight must be float32 or x's dtype (", x.scalar_type(), "), got ", weight.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension (..., C)");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight must have shape (C,) = (",
              x.size(-1), ",), got ", weight.sizes());
  TORCH_CHECK(x.is_contiguous(), op, ": x must be contiguous");
  TORCH_CHECK(weight.is_contiguous(), op, ": weight must be contiguous");
}

std::tuple<at::Tensor, at::Tensor> rms_norm_cpu(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_x_weight("rms_norm", x, weight);
  const int64_t C = x.size(-1);
  const int64_t rows = c10::multiply_integers(x.sizes().slice(0, x.dim() - 1));
  at::Tensor y = at::empty_like(x);
  at::Tensor rstd = at::empty(x.sizes().slice(0, x.dim() - 1), x.options().dtype(at::kFloat));
  if (rows == 0) return {y, rstd};
  const at::Tensor w = weight.to(at::kFloat);  // a no-op for fp32; the kernels read fp32 weights
  const float* wp = w.const_data_ptr<float>();
  float* rp = rstd.mutable_data_ptr<float>();
  const float e = static_cast<float>(eps);
  if (is_bf16(x)) {
    auto xp = static_cast<const uint16_t*>(x.const_data_ptr());
    auto yp = static_cast<uint16_t*>(y.mutable_data_ptr());
    auto fn = TINYGPT_DISPATCH(rms_norm_fwd_bf16);
    at::parallel_for(0, rows, grain_rows(C), [&](int64_t b, int64_t e_) {
      fn(xp + b * C, wp, yp + b * C, rp + b, e_ - b, C, e);
    });
  } else {
    const float* xp = x.const_data_ptr<float>();
    float* yp = y.mutable_data_ptr<float>();
    auto fn = TINYGPT_DISPATCH(rms_norm_fwd_f32);
    at::parallel_for(0, rows, grain_rows(C), [&](int64_t b, int64_t e_) {
      fn(xp + b * C, wp, yp + b * C, rp + b, e_ - b, C, e);
    });
  }
  return {y, rstd};
}

std::tuple<at::Tensor, at::Tensor> rms_norm_backward_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& weight, const at::Tensor& rstd) {
  check_x_weight("rms_norm_backward", x, weight);
  TORCH_CHECK(dy.device().is_cpu() && rstd.device().is_cpu(),
              "rms_norm_backward: the CPU kernel needs CPU tensors, got dy on ", dy.device(),
              " and rstd on ", rstd.device());
  TORCH_CHECK(dy.scalar_type() == x.scalar_type(), "rms_norm_backward: dy must have x's dtype (",
              x.scalar_type(), "), got ", dy.scalar_type());
  TORCH_CHECK(dy.sizes() == x.sizes(), "rms_norm_backward: dy must have x's shape ", x.sizes(), ", got ",
              dy.sizes());
  TORCH_CHECK(rstd.scalar_type() == at::kFloat, "rms_norm_backward: rstd must be float32, got ",
              rstd.scalar_type());
  TORCH_CHECK(rstd.sizes() == x.sizes().slice(0, x.dim() - 1),
              "rms_norm_backward: rstd must have shape x.shape[:-1] = ", x.sizes().slice(0, x.dim() - 1),
              ", got ", rstd.sizes());
  TORCH_CHECK(dy.is_contiguous(), "rms_norm_backward: dy must be contiguous");
  TORCH_CHECK(rstd.is_contiguous(), "rms_norm_backward: rstd must be contiguous");
  const int64_t C = x.size(-1);
  const int64_t rows = rstd.numel();
  at::Tensor dx = at::empty_like(x);
  if (rows == 0 || C == 0) {
    dx.zero_();
    return {dx, at::zeros_like(weight)};
  }
  // One fp32 partial sum of dw per chunk of rows, then a fixed-order reduction: the result does
  // not depend on which thread ran which chunk.
  const int64_t grain = grain_rows(C);
  const int64_t nchunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (rows + grain - 1) / grain));
  at::Tensor partial = at::zeros({nchunks * C}, x.options().dtype(at::kFloat));
  const at::Tensor w = weight.to(at::kFloat);
  const float* wp = w.const_data_ptr<float>();
  const float* rp = rstd.const_data_ptr<float>();
  float* pp = partial.mutable_data_ptr<float>();
  auto run = [&](auto fn, auto dyp, auto xp, auto dxp) {
    at::parallel_for(0, nchunks, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        const int64_t b = rows * c / nchunks, e = rows * (c + 1) / nchunks;
        fn(dyp + b * C, xp + b * C, wp, rp + b, dxp + b * C, pp + c * C, e - b, C);
      }
    });
  };
  if (is_bf16(x)) {
    run(TINYGPT_DISPATCH(rms_norm_bwd_bf16), static_cast<const uint16_t*>(dy.const_data_ptr()),
        static_cast<const uint16_t*>(x.const_data_ptr()), static_cast<uint16_t*>(dx.mutable_data_ptr()));
  } else {
    run(TINYGPT_DISPATCH(rms_norm_bwd_f32), dy.const_data_ptr<float>(), x.const_data_ptr<float>(),
        dx.mutable_data_ptr<float>());
  }
  at::Tensor dw = nchunks == 1 ? partial : partial.view({nchunks, C}).sum(0);
  return {dx, dw.to(weight.scalar_type())};
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> (Tensor y, Tensor rstd)");
  m.def("rms_norm_backward(Tensor dy, Tensor x, Tensor weight, Tensor rstd) -> (Tensor dx, Tensor dweight)");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("rms_norm", &tinygpt::rms_norm_cpu);
  m.impl("rms_norm_backward", &tinygpt::rms_norm_backward_cpu);
}
