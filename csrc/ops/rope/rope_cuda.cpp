// torch glue of the rotary-embedding CUDA kernels (rope/cuda.cu); see common/cuda_glue.h. Same
// checks as the CPU op (rope/cpu.cpp), plus float16 data.
#include "common/cuda_glue.h"
#include "ops/rope/cuda.h"

namespace tinygpt::cuda {
namespace {

at::Tensor rope_impl(const char* op, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     bool inverse) {
  const char* xn = inverse ? "dy" : "x";
  check_device(op, x, cos, sin);
  const DType dt = dtype_of(op, x);
  TORCH_CHECK(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat, op,
              ": cos and sin must be float32, got ", cos.scalar_type(), " and ", sin.scalar_type());
  TORCH_CHECK(x.dim() == 4, op, ": ", xn, " must have shape (B, T, H, D), got ", x.sizes());
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  TORCH_CHECK(D % 2 == 0, op, ": the head size D must be even, got ", D);
  TORCH_CHECK(cos.dim() == 2 && cos.size(1) == D / 2, op, ": cos must have shape (T, D/2) = (", T, ", ", D / 2,
              "), got ", cos.sizes());
  TORCH_CHECK(sin.sizes() == cos.sizes(), op, ": sin must have cos's shape ", cos.sizes(), ", got ", sin.sizes());
  TORCH_CHECK(cos.size(0) >= T, op, ": the cos/sin tables have ", cos.size(0),
              " positions, fewer than the sequence length T = ", T);
  TORCH_CHECK(x.is_contiguous(), op, ": ", xn, " must be contiguous");
  TORCH_CHECK(cos.is_contiguous() && sin.is_contiguous(), op, ": cos and sin must be contiguous");
  c10::OptionalDeviceGuard guard(x.device());
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  if (y.numel() == 0) return y;
  check_launch(op, rope_launch(dt, x.const_data_ptr(), cos.const_data_ptr<float>(), sin.const_data_ptr<float>(),
                               y.mutable_data_ptr(), B, T, H, D, inverse, stream_for(x)));
  return y;
}

at::Tensor rope_fwd(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_impl("rope", x, cos, sin, false);
}

at::Tensor rope_bwd(const at::Tensor& dy, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_impl("rope_backward", dy, cos, sin, true);
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("rope", &tinygpt::cuda::rope_fwd);
  m.impl("rope_backward", &tinygpt::cuda::rope_bwd);
}
