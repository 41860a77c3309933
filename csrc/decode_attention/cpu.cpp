// torch glue of the single-query decode attention (kernels in kernel.h, one build per ISA):
//   tinygpt::decode_attention(qkv, k_cache!, v_cache!, positions, cos, sin, n_heads, scale) -> out
// qkv (B, (H + 2 Hkv) D): each row's projected query heads, then key heads, then value heads, as
// one fused projection makes them. k_cache, v_cache (B, Hkv, Smax, D): row b's new key (turned
// by the rotary angle of positions[b]) and value are written at positions[b], then each query
// head (turned likewise) attends over keys [0, positions[b]]. out (B, H D). cos, sin (>= Smax,
// D/2) float32. A row with position -1 is idle: nothing is read or written for it and its
// output is zeros (finished sequences in a batch).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/cpu_isa.h"
#include "decode_attention/kernel_api.h"

namespace tinygpt {
namespace {

at::Tensor decode_attention_cpu(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache,
                                const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
                                int64_t n_heads, double scale) {
  constexpr const char* op = "tinygpt::decode_attention";
  const at::Tensor& kc_in = k_cache;
  const at::Tensor& vc_in = v_cache;
  for (const at::Tensor* t : {&qkv, &kc_in, &vc_in, &positions, &cos, &sin}) {
    TORCH_CHECK(t->device().is_cpu(), op, ": this kernel runs on CPU tensors, got one on ", t->device());
    TORCH_CHECK(t->is_contiguous(), op, ": inputs must be contiguous");
  }
  TORCH_CHECK_TYPE(qkv.scalar_type() == at::kFloat || qkv.scalar_type() == at::kBFloat16, op,
                   ": qkv must be float32 or bfloat16, got ", qkv.scalar_type());
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
  const int64_t* pos = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK_INDEX(pos[b] >= -1 && pos[b] < Smax, op, ": positions[", b, "] = ", pos[b],
                      " is outside the cache [0, ", Smax, ") (-1 marks an idle row)");

  at::Tensor out = at::zeros({B, n_heads * D}, qkv.options());
  const DecodeShape s{n_heads, Hkv, D, Smax, static_cast<float>(scale), qkv.scalar_type() == at::kBFloat16};
  const int64_t esz = qkv.element_size(), Dp = (D + 15) / 16 * 16, need = 2 * Dp + (Smax + 15) / 16 * 16;
  const char* q = static_cast<const char*>(qkv.data_ptr());
  char* kc = static_cast<char*>(k_cache.data_ptr());
  char* vc = static_cast<char*>(v_cache.data_ptr());
  char* o = static_cast<char*>(out.data_ptr());
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  auto fn = TINYGPT_DISPATCH(decode_attn_task);
  // one task per (row, key/value head): its keys are read once for all its query heads
  at::parallel_for(0, B * Hkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(need));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / Hkv, hk = t % Hkv;
      if (pos[b] < 0) continue;
      const int64_t head = (b * Hkv + hk) * Smax * D * esz;
      fn(s, q + b * qkv.size(1) * esz, kc + head, vc + head, pos[b], cp + pos[b] * (D / 2), sp + pos[b] * (D / 2),
         hk, o + b * n_heads * D * esz, scratch.data());
    }
  });
  return out;
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def(
      "decode_attention(Tensor qkv, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor positions, Tensor cos, "
      "Tensor sin, int n_heads, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) { m.impl("decode_attention", &tinygpt::decode_attention_cpu); }
