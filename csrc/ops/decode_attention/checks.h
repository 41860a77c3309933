// Input checks of tinygpt::decode_attention shared by the CPU and CUDA glue (each checks the
// devices itself). Returns the shape (B, Hkv, Smax, D).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cmath>
#include <cstdint>

namespace tinygpt {

inline std::array<int64_t, 4> check_decode_inputs(const char* op, const at::Tensor& qkv, const at::Tensor& k_cache,
                                                  const at::Tensor& v_cache, const at::Tensor& positions,
                                                  const at::Tensor& cos, const at::Tensor& sin, int64_t n_heads,
                                                  double scale, bool allow_f16) {
  for (const at::Tensor* t : {&qkv, &k_cache, &v_cache, &positions, &cos, &sin})
    TORCH_CHECK(t->is_contiguous(), op, ": inputs must be contiguous");
  const bool ok = qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kBFloat16 ||
                  (allow_f16 && qkv.scalar_type() == at::kHalf);
  TORCH_CHECK_TYPE(ok, op, ": qkv must be float32", allow_f16 ? ", bfloat16 or float16" : " or bfloat16", ", got ",
                   qkv.scalar_type());
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
  TORCH_CHECK_VALUE(qkv.dim() == 2 && qkv.size(0) == B && qkv.size(1) == (n_heads + 2 * Hkv) * D, op,
                    ": qkv must have shape (B, (n_heads + 2 Hkv) D) = (", B, ", ", (n_heads + 2 * Hkv) * D,
                    "), got ", qkv.sizes());
  TORCH_CHECK_VALUE(positions.dim() == 1 && positions.size(0) == B, op, ": positions must have shape (", B,
                    ",), got ", positions.sizes());
  TORCH_CHECK_VALUE(cos.dim() == 2 && cos.sizes() == sin.sizes() && cos.size(0) >= Smax && cos.size(1) == D / 2,
                    op, ": cos and sin must have shape (>= ", Smax, ", ", D / 2, "), got ", cos.sizes(), " and ",
                    sin.sizes());
  TORCH_CHECK_VALUE(std::isfinite(scale), op, ": scale must be finite, got ", scale);
  return {B, Hkv, Smax, D};
}

}  // namespace tinygpt
