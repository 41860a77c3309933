// torch glue of the RMSNorm CUDA kernels (rms_norm/cuda.cu); see common/cuda_glue.h.
#include <c10/util/accumulate.h>

#include <tuple>

#include "common/cuda_glue.h"
#include "ops/rms_norm/cuda.h"

namespace tinygpt::cuda {
namespace {

void check_x_weight(const char* op, const at::Tensor& x, const at::Tensor& weight) {
  check_device(op, x, weight);
  dtype_of(op, x);
  TORCH_CHECK(weight.scalar_type() == at::kFloat || weight.scalar_type() == x.scalar_type(), op,
              ": weight must be float32 or x's dtype (", x.scalar_type(), "), got ", weight.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension (..., C)");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight must have shape (C,) = (",
              x.size(-1), ",), got ", weight.sizes());
  TORCH_CHECK(x.is_contiguous() && weight.is_contiguous(), op, ": x and weight must be contiguous");
}

std::tuple<at::Tensor, at::Tensor> rms_norm_fwd(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_x_weight("rms_norm", x, weight);
  c10::OptionalDeviceGuard guard(x.device());
  const int64_t C = x.size(-1);
  const int64_t rows = c10::multiply_integers(x.sizes().slice(0, x.dim() - 1));
  at::Tensor y = at::empty_like(x);
  at::Tensor rstd = at::empty(x.sizes().slice(0, x.dim() - 1), x.options().dtype(at::kFloat));
  if (rows == 0) return {y, rstd};
  const at::Tensor w = weight.to(at::kFloat);
  check_launch("rms_norm", rms_norm_forward(dtype_of("rms_norm", x), x.const_data_ptr(), w.const_data_ptr<float>(),
                                            y.mutable_data_ptr(), rstd.mutable_data_ptr<float>(), rows, C,
                                            static_cast<float>(eps), stream_for(x)));
  return {y, rstd};
}

std::tuple<at::Tensor, at::Tensor> rms_norm_bwd(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight,
                                                const at::Tensor& rstd) {
  const char* op = "rms_norm_backward";
  check_x_weight(op, x, weight);
  check_device(op, x, dy, rstd);
  TORCH_CHECK(dy.scalar_type() == x.scalar_type(), op, ": dy must have x's dtype (", x.scalar_type(), "), got ",
              dy.scalar_type());
  TORCH_CHECK(dy.sizes() == x.sizes(), op, ": dy must have x's shape ", x.sizes(), ", got ", dy.sizes());
  TORCH_CHECK(rstd.scalar_type() == at::kFloat, op, ": rstd must be float32, got ", rstd.scalar_type());
  TORCH_CHECK(rstd.sizes() == x.sizes().slice(0, x.dim() - 1), op, ": rstd must have shape x.shape[:-1] = ",
              x.sizes().slice(0, x.dim() - 1), ", got ", rstd.sizes());
  TORCH_CHECK(dy.is_contiguous() && rstd.is_contiguous(), op, ": dy and rstd must be contiguous");
  c10::OptionalDeviceGuard guard(x.device());
  const int64_t C = x.size(-1);
  const int64_t rows = rstd.numel();
  at::Tensor dx = at::empty_like(x);
  if (rows == 0 || C == 0) return {dx.zero_(), at::zeros_like(weight)};
  const at::Tensor w = weight.to(at::kFloat);
  at::Tensor partial = at::empty({rms_norm_dw_blocks(rows), C}, x.options().dtype(at::kFloat));
  check_launch(op, rms_norm_backward(dtype_of(op, x), dy.const_data_ptr(), x.const_data_ptr(),
                                     w.const_data_ptr<float>(), rstd.const_data_ptr<float>(), dx.mutable_data_ptr(),
                                     partial.mutable_data_ptr<float>(), rows, C, stream_for(x)));
  return {dx, partial.sum(0).to(weight.scalar_type())};
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("rms_norm", &tinygpt::cuda::rms_norm_fwd);
  m.impl("rms_norm_backward", &tinygpt::cuda::rms_norm_bwd);
}
