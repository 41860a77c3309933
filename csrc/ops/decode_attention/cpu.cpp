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
#include "ops/decode_attention/checks.h"
#include "ops/decode_attention/kernel_api.h"

namespace tinygpt {
namespace {

at::Tensor decode_attention_cpu(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache,
                                const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin,
                                int64_t n_heads, double scale) {
  constexpr const char* op = "tinygpt::decode_attention";
  const at::Tensor& kc_in = k_cache;
  const at::Tensor& vc_in = v_cache;
  for (const at::Tensor* t : {&qkv, &kc_in, &vc_in, &positions, &cos, &sin})
    TORCH_CHECK(t->device().is_cpu(), op, ": this kernel runs on CPU tensors, got one on ", t->device());
  const auto shape = check_decode_inputs(op, qkv, kc_in, vc_in, positions, cos, sin, n_heads, scale, false);
  const int64_t B = shape[0], Hkv = shape[1], Smax = shape[2], D = shape[3];
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
