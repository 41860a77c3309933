// Rotary embedding, half-split layout (see tinygpt/ops/reference.py): for x (B, T, H, D) and
// cos, sin (>= T, D/2) fp32, with x1 = x[..., i] and x2 = x[..., i + D/2],
//   y[..., i] = x1 * c - x2 * s,   y[..., i + D/2] = x1 * s + x2 * c.
// `inverse` turns by the negative angle (s -> -s): the backward, since a rotation's transpose is
// its inverse. fp32 math for fp32 or bf16 data. ISA-generic: compiled once per instruction set.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/simd.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

// 16 pairs starting at i.
template <class T>
inline void turn(const T* x, const float* c, const float* s, T* y, int64_t half, int64_t i, float sign) {
  const f32x16 x1 = ld(x + i), x2 = ld(x + half + i), cv = load(c + i), sv = load(s + i) * sign;
  st(y + i, x1 * cv - x2 * sv);
  st(y + half + i, x1 * sv + x2 * cv);
}

template <class T>
void rope_rows(const T* x, const float* cos, const float* sin, T* y, int64_t row_begin, int64_t row_end,
               int64_t T_, int64_t H, int64_t D, bool inverse) {
  const int64_t half = D / 2;
  const float sign = inverse ? -1.f : 1.f;
  const int rem = static_cast<int>(half % kLanes);
  for (int64_t r = row_begin; r < row_end; ++r) {  // r = b * T + t: one position, all heads
    const float* c = cos + (r % T_) * half;
    const float* s = sin + (r % T_) * half;
    for (int64_t h = 0; h < H; ++h) {
      const T* xh = x + (r * H + h) * D;
      T* yh = y + (r * H + h) * D;
      int64_t i = 0;
      for (; i + kLanes <= half; i += kLanes) turn(xh, c, s, yh, half, i, sign);
      if (rem > 0) {
        if (half >= kLanes) {
          // The last 16 pairs again, overlapping the previous block: the same values are
          // written twice (y never aliases x), and no scalar tail.
          turn(xh, c, s, yh, half, half - kLanes, sign);
        } else {
          const f32x16 x1 = ld_n(xh, rem), x2 = ld_n(xh + half, rem), cv = load_n(c, rem),
                       sv = load_n(s, rem) * sign;
          st_n(yh, x1 * cv - x2 * sv, rem);
          st_n(yh + half, x1 * sv + x2 * cv, rem);
        }
      }
    }
  }
}

}  // namespace

// Rows [row_begin, row_end) of the B*T rows of H*D values; x and y point at row 0, cos and sin
// at table row 0 (row t used for position t).
void rope_rows_f32(const float* x, const float* cos, const float* sin, float* y, int64_t row_begin,
                   int64_t row_end, int64_t T, int64_t H, int64_t D, bool inverse) {
  rope_rows(x, cos, sin, y, row_begin, row_end, T, H, D, inverse);
}
void rope_rows_bf16(const uint16_t* x, const float* cos, const float* sin, uint16_t* y, int64_t row_begin,
                    int64_t row_end, int64_t T, int64_t H, int64_t D, bool inverse) {
  rope_rows(x, cos, sin, y, row_begin, row_end, T, H, D, inverse);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
