// SwiGLU's gate, elementwise (see tinygpt/ops/reference.py):
//   y = silu(a) * b = a * sigmoid(a) * b
//   da = dy * b * sigmoid(a) * (1 + a * (1 - sigmoid(a))),   db = dy * silu(a)
// fp32 math for fp32 or bf16 data; sigmoid through simd.h's vexp. ISA-generic: compiled once per
// instruction set (kernel_*.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/simd.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

// 1 / (1 + exp(-a)): exp overflows to inf for a < -88.7, which gives exactly 0.
inline f32x16 sigmoid(f32x16 a) { return 1.0f / (1.0f + vexp(-a)); }

inline f32x16 silu_mul(f32x16 a, f32x16 b) { return a * sigmoid(a) * b; }

inline void grads(f32x16 g, f32x16 av, f32x16 bv, f32x16& da, f32x16& db) {
  const f32x16 s = sigmoid(av);
  const f32x16 silu = av * s;
  db = g * silu;
  da = g * bv * (s + silu * (1.0f - s));  // s * (1 + a * (1 - s))
}

// 32 bf16 values as two f32x16 without any lane shuffle: the even-indexed values (the low
// halves of 32-bit words) and the odd-indexed ones (the high halves). Elementwise math does not
// care about the order as long as the store pairs them back the same way. This saves the
// widening and narrowing conversions of load_bf16/store_bf16, which dominate bf16 SwiGLU.
inline void load_bf16_pairs(const uint16_t* p, f32x16& even, f32x16& odd) {
  u32x16 w;
  __builtin_memcpy(&w, p, sizeof w);
  even = __builtin_bit_cast(f32x16, w << 16);
  odd = __builtin_bit_cast(f32x16, w & 0xFFFF0000u);
}
// v rounded to bf16 (nearest even; NaN stays a quiet NaN, as to_bf16), in the high 16 bits.
inline u32x16 bf16_high(f32x16 v) {
  const u32x16 w = __builtin_bit_cast(u32x16, v);
  const f32x16 r = __builtin_bit_cast(f32x16, (w + 0x7FFFu + ((w >> 16) & 1u)) & 0xFFFF0000u);
  const f32x16 inf = splat(__builtin_inff()), nan = __builtin_bit_cast(f32x16, u32x16{} + 0x7FC00000u);
  return __builtin_bit_cast(u32x16, select_lt(v, inf, r, select_lt(-inf, v, r, nan)));
}
inline void store_bf16_pairs(uint16_t* p, f32x16 even, f32x16 odd) {
  const u32x16 w = (bf16_high(even) >> 16) | bf16_high(odd);
  __builtin_memcpy(p, &w, sizeof w);
}

// 32 values: two vectors of fp32, one interleaved pair of vectors of bf16.
inline void fwd32(const float* a, const float* b, float* y) {
  st(y, silu_mul(ld(a), ld(b)));
  st(y + kLanes, silu_mul(ld(a + kLanes), ld(b + kLanes)));
}
inline void fwd32(const uint16_t* a, const uint16_t* b, uint16_t* y) {
  f32x16 a0, a1, b0, b1;
  load_bf16_pairs(a, a0, a1);
  load_bf16_pairs(b, b0, b1);
  store_bf16_pairs(y, silu_mul(a0, b0), silu_mul(a1, b1));
}
inline void bwd32(const float* dy, const float* a, const float* b, float* da, float* db) {
  f32x16 ga, gb;
  for (int k = 0; k < 2 * kLanes; k += kLanes) {
    grads(ld(dy + k), ld(a + k), ld(b + k), ga, gb);
    st(da + k, ga);
    st(db + k, gb);
  }
}
inline void bwd32(const uint16_t* dy, const uint16_t* a, const uint16_t* b, uint16_t* da, uint16_t* db) {
  f32x16 g0, g1, a0, a1, b0, b1, ga0, ga1, gb0, gb1;
  load_bf16_pairs(dy, g0, g1);
  load_bf16_pairs(a, a0, a1);
  load_bf16_pairs(b, b0, b1);
  grads(g0, a0, b0, ga0, gb0);
  grads(g1, a1, b1, ga1, gb1);
  store_bf16_pairs(da, ga0, ga1);
  store_bf16_pairs(db, gb0, gb1);
}

template <class T>
void fwd(const T* a, const T* b, T* y, int64_t n) {
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) fwd32(a + i, b + i, y + i);
  for (; i + kLanes <= n; i += kLanes) st(y + i, silu_mul(ld(a + i), ld(b + i)));
  const int rem = static_cast<int>(n - i);
  if (rem > 0) st_n(y + i, silu_mul(ld_n(a + i, rem), ld_n(b + i, rem)), rem);
}

template <class T>
void bwd(const T* dy, const T* a, const T* b, T* da, T* db, int64_t n) {
  int64_t i = 0;
  f32x16 ga, gb;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) bwd32(dy + i, a + i, b + i, da + i, db + i);
  for (; i + kLanes <= n; i += kLanes) {
    grads(ld(dy + i), ld(a + i), ld(b + i), ga, gb);
    st(da + i, ga);
    st(db + i, gb);
  }
  const int rem = static_cast<int>(n - i);
  if (rem > 0) {
    grads(ld_n(dy + i, rem), ld_n(a + i, rem), ld_n(b + i, rem), ga, gb);
    st_n(da + i, ga, rem);
    st_n(db + i, gb, rem);
  }
}

}  // namespace

// n contiguous elements of each.
void swiglu_fwd_f32(const float* a, const float* b, float* y, int64_t n) { fwd(a, b, y, n); }
void swiglu_fwd_bf16(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n) { fwd(a, b, y, n); }
void swiglu_bwd_f32(const float* dy, const float* a, const float* b, float* da, float* db, int64_t n) {
  bwd(dy, a, b, da, db, n);
}
void swiglu_bwd_bf16(const uint16_t* dy, const uint16_t* a, const uint16_t* b, uint16_t* da, uint16_t* db,
                     int64_t n) {
  bwd(dy, a, b, da, db, n);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
