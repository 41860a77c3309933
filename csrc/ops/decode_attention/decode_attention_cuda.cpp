// torch glue of the decode attention CUDA kernel (decode_attention/cuda.cu); see common/cuda_glue.h.
// The same checks as the CPU op (decode_attention/cpu.cpp) except the range of positions, which
// lives on the device: reading it would synchronise (and break CUDA graph capture), so the
// kernel treats a position outside [-1, Smax) as an idle row (output zeros, caches untouched).
// float16 is taken too (the CPU op has float32 and bfloat16).
#include <cmath>

#include "common/cuda_glue.h"
#include "ops/decode_attention/checks.h"
#include "ops/decode_attention/cuda.h"

namespace tinygpt::cuda {
namespace {

at::Tensor decode_attention_cuda(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache,
                                 const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
                                 int64_t n_heads, double scale) {
  constexpr const char* op = "tinygpt::decode_attention";
  check_device(op, qkv, k_cache, v_cache, positions, cos, sin);
  const auto shape = check_decode_inputs(op, qkv, k_cache, v_cache, positions, cos, sin, n_heads, scale, true);
  const int64_t B = shape[0], Hkv = shape[1], Smax = shape[2], D = shape[3];
  const DType dt = dtype_of(op, qkv);
  TORCH_CHECK_VALUE(D <= kDecodeMaxHeadDim, op, ": the CUDA kernel takes head dims up to ", kDecodeMaxHeadDim,
                    ", got ", D);
  c10::OptionalDeviceGuard guard(qkv.device());
  at::Tensor out = at::empty({B, n_heads * D}, qkv.options());
  if (B == 0) return out;
  check_launch(op, decode_attention_forward(dt, qkv.const_data_ptr(), k_cache.mutable_data_ptr(),
                                            v_cache.mutable_data_ptr(), positions.const_data_ptr<int64_t>(),
                                            cos.const_data_ptr<float>(), sin.const_data_ptr<float>(),
                                            out.mutable_data_ptr(), B, n_heads, Hkv, Smax, D,
                                            static_cast<float>(scale), stream_for(qkv)));
  return out;
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) { m.impl("decode_attention", &tinygpt::cuda::decode_attention_cuda); }
