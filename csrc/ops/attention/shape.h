// The problem an attention kernel call solves; plain data shared by the torch glue (cpu.cpp) and
// the per-ISA kernels (kernel.h).
#pragma once

#include <cstdint>

namespace tinygpt {

struct AttnShape {
  int64_t B, H, Hkv, T, S, D;
  float scale;
  bool causal;
  bool bf16;  // inputs and outputs are bfloat16 (else float32); the math is float32 either way
};

// Tile sizes: query rows and keys per tile.
constexpr int kAttnBr = 64;
constexpr int kAttnBc = 64;

inline int64_t attn_round16(int64_t x) { return (x + 15) / 16 * 16; }
inline int64_t attn_round_bc(int64_t x) { return (x + kAttnBc - 1) / kAttnBc * kAttnBc; }

// Floats of scratch one forward task (one query head) needs.
inline int64_t attn_fwd_scratch(const AttnShape& s) {
  const int64_t Dp = attn_round16(s.D), Sp = attn_round_bc(s.S);
  return kAttnBr * Dp /*Q*/ + Dp * Sp /*K^T*/ + Sp * Dp /*V*/ + kAttnBr * kAttnBc /*scores*/ +
         kAttnBr * Dp /*O*/ + 2 * kAttnBr /*max, sum*/;
}

// Floats of scratch one backward task (one key/value head and its query heads) needs.
inline int64_t attn_bwd_scratch(const AttnShape& s) {
  const int64_t Dp = attn_round16(s.D), Sp = attn_round_bc(s.S), T = s.T;
  return 3 * T * Dp /*Q, dO, dQ*/ + 2 * T /*lse, delta*/ + 5 * Sp * Dp /*K^T, K, V^T, dK, dV*/ +
         2 * kAttnBr * kAttnBc /*P, dP*/;
}

}  // namespace tinygpt
