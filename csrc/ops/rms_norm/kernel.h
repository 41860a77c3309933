// RMSNorm over the last dimension, fp32 math for fp32 or bf16 rows (see tinygpt/ops/reference.py):
//   y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
//   dx = rstd * g - x * (rstd^3 / C) * sum(g * x),  g = dy * w;   dw += dy * x * rstd
// The weight is always fp32 here (the glue widens a bf16 weight once). Each row stays in L1
// between its two passes. ISA-generic: compiled once per instruction set (kernel_*.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/simd.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

// Lanes [16 - rem, 16) kept, the others zeroed: the last `rem` elements of a row read as the
// 16 ending at the row's end (a full load that overlaps the previous block, no scalar tail).
inline f32x16 keep_last(f32x16 v, int rem) {
  const i32x16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return lane >= kLanes - rem ? v : splat(0.f);
}

template <class T>
float sum_squares(const T* x, int64_t C) {
  f32x16 a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 2 * kLanes <= C; i += 2 * kLanes) {
    f32x16 v0 = ld(x + i), v1 = ld(x + i + kLanes);
    a0 += v0 * v0;
    a1 += v1 * v1;
  }
  if (i + kLanes <= C) {
    f32x16 v = ld(x + i);
    a0 += v * v;
    i += kLanes;
  }
  const int rem = static_cast<int>(C - i);
  if (rem > 0) {
    f32x16 v = C >= kLanes ? keep_last(ld(x + C - kLanes), rem) : ld_n(x, rem);
    a1 += v * v;
  }
  return hsum(a0 + a1);
}

template <class T>
void fwd_rows(const T* x, const float* w, T* y, float* rstd, int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    const float rs = 1.0f / __builtin_sqrtf(sum_squares(xr, C) / static_cast<float>(C) + eps);
    rstd[r] = rs;
    const f32x16 vr = splat(rs);
    int64_t i = 0;
    for (; i + kLanes <= C; i += kLanes) st(yr + i, ld(xr + i) * vr * load(w + i));
    const int rem = static_cast<int>(C - i);
    if (rem > 0) {
      if (C >= kLanes) {  // recompute the last full block: same values, no scalar tail
        const int64_t j = C - kLanes;
        st(yr + j, ld(xr + j) * vr * load(w + j));
      } else {
        st_n(yr, ld_n(xr, rem) * vr * load_n(w, rem), rem);
      }
    }
  }
}

template <class T>
void bwd_rows(const T* dy, const T* x, const float* w, const float* rstd, T* dx, float* dw,
              int64_t rows, int64_t C) {
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const T* dyr = dy + r * C;
    const T* xr = x + r * C;
    T* dxr = dx + r * C;
    const float rs = rstd[r];
    // Pass 1: sum(dy * w * x).
    f32x16 a0 = {}, a1 = {};
    int64_t i = 0;
    for (; i + 2 * kLanes <= C; i += 2 * kLanes) {
      a0 += ld(dyr + i) * load(w + i) * ld(xr + i);
      a1 += ld(dyr + i + kLanes) * load(w + i + kLanes) * ld(xr + i + kLanes);
    }
    if (i + kLanes <= C) {
      a0 += ld(dyr + i) * load(w + i) * ld(xr + i);
      i += kLanes;
    }
    const int rem = static_cast<int>(C - i);
    if (rem > 0) {
      if (C >= kLanes) {
        const int64_t j = C - kLanes;
        a1 += keep_last(ld(dyr + j) * load(w + j) * ld(xr + j), rem);
      } else {
        a1 += ld_n(dyr, rem) * load_n(w, rem) * ld_n(xr, rem);
      }
    }
    const float coef = rs * rs * rs * inv_c * hsum(a0 + a1);
    const f32x16 vr = splat(rs), vc = splat(coef);
    // Pass 2: dx, and this chunk's share of dw.
    for (i = 0; i + kLanes <= C; i += kLanes) {
      const f32x16 g = ld(dyr + i), xv = ld(xr + i);
      st(dxr + i, vr * (g * load(w + i)) - xv * vc);
      store(dw + i, load(dw + i) + g * (xv * vr));
    }
    if (rem > 0) {
      if (C >= kLanes) {
        const int64_t j = C - kLanes;
        const f32x16 g = ld(dyr + j), xv = ld(xr + j);
        st(dxr + j, vr * (g * load(w + j)) - xv * vc);
        store(dw + j, load(dw + j) + keep_last(g * (xv * vr), rem));
      } else {
        const f32x16 g = ld_n(dyr, rem), xv = ld_n(xr, rem);
        st_n(dxr, vr * (g * load_n(w, rem)) - xv * vc, rem);
        store_n(dw, load_n(dw, rem) + g * (xv * vr), rem);
      }
    }
  }
}

}  // namespace

// rows x C, row-major and contiguous; rstd: one per row; w: C fp32 values.
void rms_norm_fwd_f32(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t C,
                      float eps) {
  fwd_rows(x, w, y, rstd, rows, C, eps);
}
void rms_norm_fwd_bf16(const uint16_t* x, const float* w, uint16_t* y, float* rstd, int64_t rows,
                       int64_t C, float eps) {
  fwd_rows(x, w, y, rstd, rows, C, eps);
}
// dw: C fp32 sums that the rows' contributions are added to.
void rms_norm_bwd_f32(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                      float* dw, int64_t rows, int64_t C) {
  bwd_rows(dy, x, w, rstd, dx, dw, rows, C);
}
void rms_norm_bwd_bf16(const uint16_t* dy, const uint16_t* x, const float* w, const float* rstd,
                       uint16_t* dx, float* dw, int64_t rows, int64_t C) {
  bwd_rows(dy, x, w, rstd, dx, dw, rows, C);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
