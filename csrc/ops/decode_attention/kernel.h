// Single-query attention for decode steps, compiled once per ISA (kernel_{base,avx2,avx512}.cpp).
//
// One task is one sequence and one key/value head. It turns the new key by the rotary angle of
// its position and appends it and the new value to the cache, then for each query head of the
// group: turns the query, scores it against the cached keys [0, pos], softmax, and sums the
// values. The math is float32; bfloat16 data are widened on load. Half-split rotary layout, the
// same as tinygpt::rope: pairs (x[i], x[i + D/2]).
#pragma once

#include <cstdint>

#include "common/simd.h"
#include "ops/decode_attention/kernel_api.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

template <class T>
TG_INLINE f32x16 ld_any(const T* p, int64_t n) {
  return n >= 16 ? ld(p) : ld_n(p, static_cast<int>(n));
}

// dst[0, D) = rope(src) in float32, times mul (dst past D is left alone).
template <class T>
inline void rope_row(const T* src, int64_t D, const float* c, const float* s, float mul, float* dst) {
  const int64_t h = D / 2;
  for (int64_t i = 0; i < h; i += 16) {
    const int64_t n = h - i;
    const f32x16 x1 = ld_any(src + i, n), x2 = ld_any(src + h + i, n);
    const f32x16 cv = ld_any(c + i, n), sv = ld_any(s + i, n);
    const f32x16 y1 = (x1 * cv - x2 * sv) * mul, y2 = (x1 * sv + x2 * cv) * mul;
    if (n >= 16) {
      store(dst + i, y1), store(dst + h + i, y2);
    } else {
      store_n(dst + i, y1, static_cast<int>(n)), store_n(dst + h + i, y2, static_cast<int>(n));
    }
  }
}

template <class T>
inline void store_any(T* p, const float* src, int64_t D) {
  for (int64_t d = 0; d < D; d += 16) {
    const f32x16 v = load(src + d);  // src is padded to a multiple of 16
    if (D - d >= 16)
      st(p + d, v);
    else
      st_n(p + d, v, static_cast<int>(D - d));
  }
}

// r[j] = the sum of the lanes of a[j], for 16 vectors at once: four rounds of pairwise
// shuffle-and-add instead of 16 dependent scalar sums each.
template <int W>
TG_INLINE f32x16 fold(f32x16 x, f32x16 y) {
  if constexpr (W == 8)
    return __builtin_shufflevector(x, y, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(x, y, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  else if constexpr (W == 4)
    return __builtin_shufflevector(x, y, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(x, y, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  else if constexpr (W == 2)
    return __builtin_shufflevector(x, y, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           __builtin_shufflevector(x, y, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  else
    return __builtin_shufflevector(x, y, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
           __builtin_shufflevector(x, y, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

TG_INLINE f32x16 hsum16(f32x16* a) {
  for (int i = 0; i < 8; ++i) a[i] = fold<8>(a[2 * i], a[2 * i + 1]);
  for (int i = 0; i < 4; ++i) a[i] = fold<4>(a[2 * i], a[2 * i + 1]);
  for (int i = 0; i < 2; ++i) a[i] = fold<2>(a[2 * i], a[2 * i + 1]);
  return fold<1>(a[0], a[1]);
}

// Head dims over 128: the same in slices of 8 vectors, the scores summed over the slices.
template <class T>
void attend_any(const float* q, const T* kc, const T* vc, int64_t n, int64_t D, float scale, float* p,
                float* acc) {
  const int64_t Dp = (D + 15) / 16 * 16;
  for (int64_t j = 0; j < n; ++j) {
    f32x16 a = splat(0.f);
    for (int64_t d = 0; d < Dp; d += 16) a += load(q + d) * ld_any(kc + j * D + d, D - d);
    p[j] = hsum(a) * scale;
  }
  float mx = -__builtin_inff(), sum = 0.f;
  for (int64_t j = 0; j < n; ++j) mx = p[j] > mx ? p[j] : mx;
  for (int64_t j = 0; j < n; ++j) sum += (p[j] = sexp(p[j] - mx));
  for (int64_t d = 0; d < Dp; d += 16) store(acc + d, splat(0.f));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < Dp; d += 16) store(acc + d, load(acc + d) + splat(p[j]) * ld_any(vc + j * D + d, D - d));
  for (int64_t d = 0; d < Dp; d += 16) store(acc + d, load(acc + d) * (1.f / sum));
}

// One query head against keys/values [0, n): NC = Dp / 16 vectors per row, held in registers.
template <int NC, class T>
TG_INLINE void attend(const float* q, const T* kc, const T* vc, int64_t n, int64_t D, float scale, float* p,
                      float* acc) {
  f32x16 qv[NC];
  for (int c = 0; c < NC; ++c) qv[c] = load(q + 16 * c);
  // scores, 16 keys at a time
  float mx = -__builtin_inff();
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int64_t cnt = n - j0 < 16 ? n - j0 : 16;
    f32x16 a[16];
    if (cnt == 16 && D == 16 * NC) {  // the common case, fully unrolled
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        const T* kj = kc + (j0 + j) * D;
        a[j] = qv[0] * ld(kj);
#pragma GCC unroll 8
        for (int c = 1; c < NC; ++c) a[j] += qv[c] * ld(kj + 16 * c);
      }
    } else {
      for (int64_t j = 0; j < 16; ++j) {
        a[j] = splat(0.f);
        if (j >= cnt) continue;
        const T* kj = kc + (j0 + j) * D;
        for (int c = 0; c < NC; ++c) a[j] += qv[c] * ld_any(kj + 16 * c, D - 16 * c);
      }
    }
    const f32x16 sc = hsum16(a) * scale;
    store(p + j0, sc);
    for (int64_t j = 0; j < cnt; ++j) mx = sc[j] > mx ? sc[j] : mx;
  }
  // softmax weights (the padding past n is left out of the sum)
  float sum = 0.f;
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const f32x16 e = vexp(load(p + j0) - mx);
    store(p + j0, e);
    const int64_t cnt = n - j0 < 16 ? n - j0 : 16;
    if (cnt == 16)
      sum += hsum(e);
    else
      for (int64_t j = 0; j < cnt; ++j) sum += e[j];
  }
  // weighted sum of the values
  f32x16 o[NC];
  for (int c = 0; c < NC; ++c) o[c] = splat(0.f);
  if (D == 16 * NC) {
    for (int64_t j = 0; j < n; ++j) {
      const f32x16 w = splat(p[j]);
      const T* vj = vc + j * D;
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) o[c] += w * ld(vj + 16 * c);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const f32x16 w = splat(p[j]);
      const T* vj = vc + j * D;
      for (int c = 0; c < NC; ++c) o[c] += w * ld_any(vj + 16 * c, D - 16 * c);
    }
  }
  const f32x16 inv = splat(1.f / sum);
  for (int c = 0; c < NC; ++c) store(acc + 16 * c, o[c] * inv);
}

template <class T>
void task(const DecodeShape& s, const T* qkv, T* kc, T* vc, int64_t pos, const float* c, const float* sn,
          int64_t hk, T* out, float* scratch) {
  const int64_t D = s.D, Dp = (D + 15) / 16 * 16, G = s.H / s.Hkv, n = pos + 1;
  float* q = scratch;      // Dp, zero-padded
  float* acc = q + Dp;     // Dp
  float* p = acc + Dp;     // n scores, rounded up to 16
  const T* knew = qkv + (s.H + hk) * D;
  const T* vnew = qkv + (s.H + s.Hkv + hk) * D;
  for (int64_t d = D; d < Dp; ++d) q[d] = 0.f;
  // append the new key (turned, through float32 like tinygpt::rope) and value
  rope_row(knew, D, c, sn, 1.f, q);
  store_any(kc + pos * D, q, D);
  for (int64_t d = 0; d < D; ++d) vc[pos * D + d] = vnew[d];

  for (int64_t h = hk * G; h < (hk + 1) * G; ++h) {
    rope_row(qkv + h * D, D, c, sn, 1.f, q);
    if constexpr (sizeof(T) == 2) {  // the rope op rounds the turned query to bf16: so do we
      for (int64_t d = 0; d < D; d += 16) {
        const int m = static_cast<int>(D - d < 16 ? D - d : 16);
        uint16_t tmp[16];
        store_bf16_n(tmp, load(q + d), m);
        store_n(q + d, load_bf16_n(tmp, m), m);
      }
    }
    switch (Dp / 16) {
      case 1: attend<1>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 2: attend<2>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 3: attend<3>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 4: attend<4>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 5: attend<5>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 6: attend<6>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 7: attend<7>(q, kc, vc, n, D, s.scale, p, acc); break;
      case 8: attend<8>(q, kc, vc, n, D, s.scale, p, acc); break;
      default: attend_any(q, kc, vc, n, D, s.scale, p, acc); break;
    }
    store_any(out + h * D, acc, D);
  }
}

}  // namespace

void decode_attn_task(const DecodeShape& s, const void* qkv_row, void* k_head, void* v_head, int64_t pos,
                      const float* cos_row, const float* sin_row, int64_t hk, void* out_row, float* scratch) {
  if (s.bf16)
    task(s, static_cast<const uint16_t*>(qkv_row), static_cast<uint16_t*>(k_head), static_cast<uint16_t*>(v_head),
         pos, cos_row, sin_row, hk, static_cast<uint16_t*>(out_row), scratch);
  else
    task(s, static_cast<const float*>(qkv_row), static_cast<float*>(k_head), static_cast<float*>(v_head), pos,
         cos_row, sin_row, hk, static_cast<float*>(out_row), scratch);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
