// Fused cross-entropy over the vocabulary, ISA-generic (compiled once per ISA by
// kernel_base.cpp, kernel_avx2.cpp and kernel_avx512.cpp; see common/simd.h).
//
// Forward, per row x (V logits) with target t: max m (one pass), s = sum exp(x - m) (a second pass
// over the row, which is still in L1/L2), lse = m + log(s) and loss = (m - x[t]) + log(s), the
// last two in double. Backward, per row: g = exp(x - lse) * scale, then g[t] = (p[t] - 1) * scale,
// in one pass that writes the logits' dtype. Rows whose target is ignore_index get lse 0, loss 0
// and gradient 0. A row holding NaN or +inf (or only -inf) gets lse NaN, as torch's log_softmax
// does, and its gradient is NaN.
//
// Targets are checked by the caller: each is ignore_index or in [0, V).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/simd.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

constexpr float kInf = __builtin_inff();

// One element (float or bf16 bits) as a float; the vector forms are simd.h's ld/st.
inline float ld1(const float* p) { return *p; }
inline float ld1(const uint16_t* p) { return load_bf16_n(p, 1)[0]; }

// Lanes [0, n) of v, the others `fill`.
inline f32x16 first_lanes(f32x16 v, int n, float fill) {
  const i32x16 idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return idx < n ? v : splat(fill);
}

struct RowStats {
  float max;     // NaN when the row holds NaN or +inf, or is all -inf
  double log_s;  // log(sum exp(x - max))
};

template <class T>
RowStats row_stats(const T* x, int64_t V) {
  constexpr int64_t kStep = 4 * kLanes;
  // Pass 1: the maximum.
  f32x16 m0 = splat(-kInf), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + kStep <= V; i += kStep) {
    m0 = vmax(m0, ld(x + i));
    m1 = vmax(m1, ld(x + i + kLanes));
    m2 = vmax(m2, ld(x + i + 2 * kLanes));
    m3 = vmax(m3, ld(x + i + 3 * kLanes));
  }
  for (; i + kLanes <= V; i += kLanes) m0 = vmax(m0, ld(x + i));
  const int tail = static_cast<int>(V - i);
  if (tail) m1 = vmax(m1, first_lanes(ld_n(x + i, tail), tail, -kInf));
  const float m = hmax(vmax(vmax(m0, m1), vmax(m2, m3)));

  // Pass 2: sum exp(x - m). `diffs` sums the differences, which are <= 0 or -inf unless the row
  // holds NaN (vmax drops it), +inf (inf - inf) or only -inf (-inf + inf): then it is NaN.
  const f32x16 mv = splat(m);
  f32x16 s0 = {}, s1 = {}, s2 = {}, s3 = {}, diffs = {};
  for (i = 0; i + kStep <= V; i += kStep) {
    const f32x16 a = ld(x + i) - mv, b = ld(x + i + kLanes) - mv;
    const f32x16 c = ld(x + i + 2 * kLanes) - mv, d = ld(x + i + 3 * kLanes) - mv;
    diffs += (a + b) + (c + d);
    s0 += vexp(a);
    s1 += vexp(b);
    s2 += vexp(c);
    s3 += vexp(d);
  }
  for (; i + kLanes <= V; i += kLanes) {
    const f32x16 a = ld(x + i) - mv;
    diffs += a;
    s0 += vexp(a);
  }
  if (tail) {
    const f32x16 a = first_lanes(ld_n(x + i, tail) - mv, tail, -kInf);
    diffs += a;
    s1 += vexp(a);
  }
  const float bad = hsum(diffs);
  const float s = hsum((s0 + s1) + (s2 + s3));
  if (bad != bad) return {__builtin_nanf(""), 0.0};
  return {m, __builtin_log(static_cast<double>(s))};
}

template <class T>
void fwd_rows(const T* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore_index,
              float* lse, double* row_loss) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) {
      lse[r] = 0.f;
      row_loss[r] = 0.0;
      continue;
    }
    const T* x = logits + r * V;
    const RowStats rs = row_stats(x, V);
    lse[r] = static_cast<float>(static_cast<double>(rs.max) + rs.log_s);
    row_loss[r] = (static_cast<double>(rs.max) - static_cast<double>(ld1(x + t))) + rs.log_s;
  }
}

template <class T>
void fill_row(T* g, int64_t V, float value) {
  const f32x16 v = splat(value);
  int64_t i = 0;
  for (; i + kLanes <= V; i += kLanes) st(g + i, v);
  if (i < V) st_n(g + i, v, static_cast<int>(V - i));
}

template <class T>
void bwd_rows(const T* logits, const int64_t* targets, const float* lse, int64_t rows, int64_t V,
              int64_t ignore_index, float scale, T* grad) {
  constexpr int64_t kStep = 4 * kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = targets[r];
    const T* x = logits + r * V;
    T* g = grad + r * V;
    if (t == ignore_index) {
      fill_row(g, V, 0.f);
      continue;
    }
    const float l = lse[r];
    if (l != l) {
      fill_row(g, V, __builtin_nanf(""));
      continue;
    }
    const f32x16 lv = splat(l), sv = splat(scale);
    int64_t i = 0;
    for (; i + kStep <= V; i += kStep) {
      const f32x16 a = vexp(ld(x + i) - lv), b = vexp(ld(x + i + kLanes) - lv);
      const f32x16 c = vexp(ld(x + i + 2 * kLanes) - lv), d = vexp(ld(x + i + 3 * kLanes) - lv);
      st(g + i, a * sv);
      st(g + i + kLanes, b * sv);
      st(g + i + 2 * kLanes, c * sv);
      st(g + i + 3 * kLanes, d * sv);
    }
    for (; i + kLanes <= V; i += kLanes) st(g + i, vexp(ld(x + i) - lv) * sv);
    if (i < V) {
      const int tail = static_cast<int>(V - i);
      st_n(g + i, vexp(ld_n(x + i, tail) - lv) * sv, tail);
    }
    // The one-hot term: the same exp as the vector lanes, minus 1, scaled once.
    const float p = sexp(ld1(x + t) - l);
    st_n(g + t, splat((p - 1.f) * scale), 1);
  }
}

}  // namespace

// Forward over `rows` rows of `V` logits: lse[r] and row_loss[r] (0 for ignored rows).
void cross_entropy_fwd_f32(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                           int64_t ignore_index, float* lse, double* row_loss) {
  fwd_rows(logits, targets, rows, V, ignore_index, lse, row_loss);
}
void cross_entropy_fwd_bf16(const uint16_t* logits, const int64_t* targets, int64_t rows, int64_t V,
                            int64_t ignore_index, float* lse, double* row_loss) {
  fwd_rows(logits, targets, rows, V, ignore_index, lse, row_loss);
}

// Backward: grad = (exp(x - lse) - onehot(target)) * scale, 0 for ignored rows.
void cross_entropy_bwd_f32(const float* logits, const int64_t* targets, const float* lse, int64_t rows,
                           int64_t V, int64_t ignore_index, float scale, float* grad) {
  bwd_rows(logits, targets, lse, rows, V, ignore_index, scale, grad);
}
void cross_entropy_bwd_bf16(const uint16_t* logits, const int64_t* targets, const float* lse, int64_t rows,
                            int64_t V, int64_t ignore_index, float scale, uint16_t* grad) {
  bwd_rows(logits, targets, lse, rows, V, ignore_index, scale, grad);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
