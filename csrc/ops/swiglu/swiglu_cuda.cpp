// torch glue of the SwiGLU CUDA kernels (swiglu/cuda.cu); see common/cuda_glue.h. Same checks as
// the CPU op (swiglu/cpu.cpp), plus float16 data.
#include <tuple>

#include "common/cuda_glue.h"
#include "ops/swiglu/cuda.h"

namespace tinygpt::cuda {
namespace {

void check_pair(const char* op, const char* an, const at::Tensor& a, const char* bn, const at::Tensor& b) {
  check_device(op, a, b);
  dtype_of(op, a);
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), op, ": ", bn, " must have ", an, "'s dtype (", a.scalar_type(),
              "), got ", b.scalar_type());
  TORCH_CHECK(b.sizes() == a.sizes(), op, ": ", bn, " must have ", an, "'s shape ", a.sizes(), ", got ", b.sizes());
  TORCH_CHECK(a.is_contiguous(), op, ": ", an, " must be contiguous");
  TORCH_CHECK(b.is_contiguous(), op, ": ", bn, " must be contiguous");
}

at::Tensor swiglu_fwd(const at::Tensor& a, const at::Tensor& b) {
  const char* op = "swiglu";
  check_pair(op, "a", a, "b", b);
  c10::OptionalDeviceGuard guard(a.device());
  at::Tensor y = at::empty_like(a, at::MemoryFormat::Contiguous);
  if (a.numel() == 0) return y;
  check_launch(op, swiglu_forward(dtype_of(op, a), a.const_data_ptr(), b.const_data_ptr(), y.mutable_data_ptr(),
                                  a.numel(), stream_for(a)));
  return y;
}

std::tuple<at::Tensor, at::Tensor> swiglu_bwd(const at::Tensor& dy, const at::Tensor& a, const at::Tensor& b) {
  const char* op = "swiglu_backward";
  check_pair(op, "a", a, "b", b);
  check_pair(op, "a", a, "dy", dy);
  c10::OptionalDeviceGuard guard(a.device());
  at::Tensor da = at::empty_like(a, at::MemoryFormat::Contiguous), db = at::empty_like(b, at::MemoryFormat::Contiguous);
  if (a.numel() == 0) return {da, db};
  check_launch(op, swiglu_backward(dtype_of(op, a), dy.const_data_ptr(), a.const_data_ptr(), b.const_data_ptr(),
                                   da.mutable_data_ptr(), db.mutable_data_ptr(), a.numel(), stream_for(a)));
  return {da, db};
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("swiglu", &tinygpt::cuda::swiglu_fwd);
  m.impl("swiglu_backward", &tinygpt::cuda::swiglu_bwd);
}
