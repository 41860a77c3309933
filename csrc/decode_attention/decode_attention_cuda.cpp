// torch glue of the decode attention CUDA kernel (decode_attention/cuda.cu); see common/cuda_glue.h.
// The same checks as the CPU op (decode_attention/cpu.cpp) except the range of positions, which
// lives on the device: reading it would synchronise (and break CUDA graph capture), so the
// kernel treats a position outside [-1, Smax) as an idle row (output zeros, caches untouched).
// float16 is taken too (the CPU op has float32 and bfloat16).
#include <cmath>

#include "common/cuda_glue.h"
#include "decode_attention/cuda.h"

namespace tinygpt::cuda {
namespace {

at::Tensor decode_attention_cuda(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache,
                                 const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
                                 int64_t n_heads, double scale) {
  constexpr const char* op = "tinygpt::decode_attention";
  check_device(op, qkv, k_cache, v_cache, positions, cos, sin);
  for (const at::Tensor* t : {&qkv, static_cast<const at::Tensor*>(&k_cache), static_cast<const at::Tensor*>(&v_cache),
                              &positions, &cos, &sin})
    TORCH_CHECK(t->is_contiguous(), op, ": inputs must be contiguous");
  TORCH_CHECK_TYPE(qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kBFloat16 ||
                       qkv.scalar_type() == at::kHalf,
                   op, ": qkv must be float32, bfloat16 or float16, got ", qkv.scalar_type());
  const DType dt = dtype_of(op, qkv);
  TORCH_CHECK_TYPE(k_cache.scalar_type() == qkv.scalar_type() && v_cache.scalar_type() == qkv.scalar_type(), op,
                   ": the caches must have qkv's dtype (", qkv.scalar_type(), "), got ", k_cache.scalar_type(),
                   " and ", v_cache.scalar_type());
  TORCH_CHECK_TYPE(positions.scalar_type() == at::kLong, op, ": positions must be int64, got ",
                   positions.scalar_type());
  TORCH_CHECK_TYPE(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat, op,
                   ": cos and sin must be float32");
  TORCH_CHECK_VALUE(k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes(), op,
                    ": k_cache and v_cache must have one shape (B, Hkv, Smax, D), got ", k_cache.sizes(), " and ",
                    v_cache.sizes());
  const int64_t B = k_cache.size(0), Hkv = k_cache.size(1), Smax = k_cache.size(2), D = k_cache.size(3);
  TORCH_CHECK_VALUE(Hkv > 0 && n_heads > 0 && n_heads % Hkv == 0, op, ": n_heads (", n_heads,
                    ") must be a positive multiple of the cache's key/value heads (", Hkv, ")");
  TORCH_CHECK_VALUE(D > 0 && D % 2 == 0, op, ": head dim must be even and positive, got ", D);
  TORCH_CHECK_VALUE(D <= kDecodeMaxHeadDim, op, ": the CUDA kernel takes head dims up to ", kDecodeMaxHeadDim,
                    ", got ", D);
  TORCH_CHECK_VALUE(qkv.dim() == 2 && qkv.size(0) == B && qkv.size(1) == (n_heads + 2 * Hkv) * D, op,
                    ": qkv must have shape (B, (n_heads + 2 Hkv) D) = (", B, ", ", (n_heads + 2 * Hkv) * D,
                    "), got ", qkv.sizes());
  TORCH_CHECK_VALUE(positions.dim() == 1 && positions.size(0) == B, op, ": positions must have shape (", B,
                    ",), got ", positions.sizes());
  TORCH_CHECK_VALUE(cos.dim() == 2 && cos.sizes() == sin.sizes() && cos.size(0) >= Smax && cos.size(1) == D / 2,
                    op, ": cos and sin must have shape (>= ", Smax, ", ", D / 2, "), got ", cos.sizes(), " and ",
                    sin.sizes());
  TORCH_CHECK_VALUE(std::isfinite(scale), op, ": scale must be finite, got ", scale);
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
