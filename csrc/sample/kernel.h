// Fused sampling from a row of logits, ISA-generic (compiled once per ISA by kernel_base.cpp,
// kernel_avx2.cpp and kernel_avx512.cpp; see common/simd.h).
//
// Per row (the semantics are in tinygpt/ops/reference.py, sample_probs):
//   1. max m over the row, checking for NaN / +inf (vector pass);
//      temperature 0: the first index holding m (vector pass), done;
//   2. e_i = exp((x_i - m) * s), s = fp32(1 / T), into a scratch row, with per-block (64) sums and,
//      when top_k needs them, per-block maxima (vector pass). e_max is exactly 1;
//   3. thresholds on e, no sort of the vocabulary:
//      - top_k: the k-th largest block maximum t0 is a lower bound of the k-th largest e (the k
//        largest blocks hold k distinct values >= t0), so only the few e >= t0 are gathered, in
//        index order, and the k-th largest among them is found by quickselect. When k is too
//        large for that bound: a radix select on the float bits of e (non-negative floats order
//        like their bits): 3 levels of 10-bit digits, a count histogram per level, then only the
//        boundary bucket's values go on to the next level;
//      - min_p: the threshold min_p (e_max = 1), rounded up to a float; the tokens above it are
//        gathered when nothing is yet;
//      - top_p: among the tokens kept so far, the largest tau with mass{e >= tau} >= p * mass:
//        sorting the gathered candidates when they are few, else the same radix select with
//        per-bucket masses (double) over the whole row;
//   4. inverse CDF in index order over the kept tokens (e >= the final threshold): over the
//      gathered candidates, or over the per-block sums (masked again for a threshold) and then
//      the one block that holds u * Z.
// Sums are in double. Nothing here allocates; the caller passes the scratch.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/simd.h"
#include "sample/kernel_api.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

constexpr float kInf = __builtin_inff();
constexpr int64_t kBlk = kSampleBlock;  // elements per block: 4 vectors
constexpr int kDigitBits = 10;
constexpr int kBuckets = 1 << kDigitBits;
constexpr int64_t kSortMax = 96;        // values up to this many are sorted (mass mode)
constexpr int64_t kSelectMax = 1024;    // values up to this many are quickselected (count mode)

typedef float f32x4 __attribute__((vector_size(16)));

TG_INLINE uint32_t fbits(float v) { return __builtin_bit_cast(uint32_t, v); }
TG_INLINE float bitsf(uint32_t b) { return __builtin_bit_cast(float, b); }
TG_INLINE float fmax1(float a, float b) { return a < b ? b : a; }
TG_INLINE float fmin1(float a, float b) { return a < b ? a : b; }

// Horizontal sum and maximum as trees of native-width operations.
TG_INLINE f32x4 quarter_sum(f32x16 v) {
  const f32x4 q0 = __builtin_shufflevector(v, v, 0, 1, 2, 3), q1 = __builtin_shufflevector(v, v, 4, 5, 6, 7);
  const f32x4 q2 = __builtin_shufflevector(v, v, 8, 9, 10, 11), q3 = __builtin_shufflevector(v, v, 12, 13, 14, 15);
  return (q0 + q1) + (q2 + q3);
}
TG_INLINE float hsum16(f32x16 v) {
  const f32x4 s = quarter_sum(v);
  return (s[0] + s[2]) + (s[1] + s[3]);
}
TG_INLINE f32x4 max4(f32x4 a, f32x4 b) { return a < b ? b : a; }
TG_INLINE float hmax16(f32x16 v) {
  const f32x4 q0 = __builtin_shufflevector(v, v, 0, 1, 2, 3), q1 = __builtin_shufflevector(v, v, 4, 5, 6, 7);
  const f32x4 q2 = __builtin_shufflevector(v, v, 8, 9, 10, 11), q3 = __builtin_shufflevector(v, v, 12, 13, 14, 15);
  const f32x4 m = max4(max4(q0, q1), max4(q2, q3));
  return fmax1(fmax1(m[0], m[2]), fmax1(m[1], m[3]));
}

// Bit l set where a[l] >= t[l] (no NaN here).
TG_INLINE uint32_t ge_mask(f32x16 a, f32x16 t) {
#if defined(__AVX512F__)
  return static_cast<uint32_t>(_mm512_cmp_ps_mask((__m512)a, (__m512)t, _CMP_GE_OQ));
#elif defined(__AVX__)
  typedef float f32x8 __attribute__((vector_size(32)));
  const f32x8 a0 = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7);
  const f32x8 a1 = __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
  const f32x8 t0 = __builtin_shufflevector(t, t, 0, 1, 2, 3, 4, 5, 6, 7);
  const f32x8 t1 = __builtin_shufflevector(t, t, 8, 9, 10, 11, 12, 13, 14, 15);
  const uint32_t lo = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps((__m256)a0, (__m256)t0, _CMP_GE_OQ)));
  const uint32_t hi = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps((__m256)a1, (__m256)t1, _CMP_GE_OQ)));
  return lo | (hi << 8);
#elif defined(__SSE2__)
  uint32_t m = 0;
  for (int q = 0; q < 4; ++q) {
    f32x4 aq, tq;
    __builtin_memcpy(&aq, reinterpret_cast<const char*>(&a) + 16 * q, 16);
    __builtin_memcpy(&tq, reinterpret_cast<const char*>(&t) + 16 * q, 16);
    m |= static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps((__m128)aq, (__m128)tq))) << (4 * q);
  }
  return m;
#else
  uint32_t m = 0;
  for (int l = 0; l < kLanes; ++l) m |= static_cast<uint32_t>(a[l] >= t[l]) << l;
  return m;
#endif
}

// Lanes [0, n) of v, the others `fill`.
TG_INLINE f32x16 first_lanes(f32x16 v, int n, float fill) {
  const i32x16 idx = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return idx < n ? v : splat(fill);
}

// With AVX-512 appending is branch-free (a compress and a whole-vector store), cheaper than a
// mispredicted test for an empty mask.
#if defined(__AVX512F__)
constexpr bool kCompress = true;
#else
constexpr bool kCompress = false;
#endif

// Appends the lanes of v = load(src) whose bit is set in k to out[n...], in order, and returns
// the new count. The AVX-512 build stores a whole vector: out needs 16 floats of room past it.
// out may be src's array if n <= the index of src (the vector is read before the store).
TG_INLINE int64_t append_lanes(float* out, int64_t n, const float* src, f32x16 v, uint32_t k) {
#if defined(__AVX512F__)
  (void)src;
  _mm512_storeu_ps(out + n, _mm512_maskz_compress_ps(static_cast<__mmask16>(k), (__m512)v));
  return n + __builtin_popcount(k);
#else
  (void)v;
  while (k) {
    out[n++] = src[__builtin_ctz(k)];
    k &= k - 1;
  }
  return n;
#endif
}

// The same with the lanes' indices base + l.
TG_INLINE int64_t append_lanes_idx(float* out, int32_t* idx, int64_t n, const float* src, f32x16 v, uint32_t k,
                                   int32_t base) {
#if defined(__AVX512F__)
  (void)src;
  const __m512i ids = _mm512_add_epi32(_mm512_set1_epi32(base),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  _mm512_storeu_ps(out + n, _mm512_maskz_compress_ps(static_cast<__mmask16>(k), (__m512)v));
  _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(static_cast<__mmask16>(k), ids));
  return n + __builtin_popcount(k);
#else
  (void)v;
  while (k) {
    const int l = __builtin_ctz(k);
    out[n] = src[l];
    idx[n++] = base + l;
    k &= k - 1;
  }
  return n;
#endif
}

// Elements [i, i + 16) of a row of V, -inf past its end.
template <class T>
TG_INLINE f32x16 ld_row(const T* x, int64_t i, int64_t V) {
  if (i + kLanes <= V) return ld(x + i);
  if (i >= V) return splat(-kInf);
  const int n = static_cast<int>(V - i);
  return first_lanes(ld_n(x + i, n), n, -kInf);
}

// ---- pass 1: the maximum, and whether the row holds NaN or +inf ---------------------------------

template <class T>
float row_max(const T* x, int64_t V, bool* bad) {
  const f32x16 inf = splat(kInf), zero = {}, one = splat(1.f);
  f32x16 m0 = splat(-kInf), m1 = m0, m2 = m0, m3 = m0, nb = zero;
  int64_t i = 0;
  for (; i + 4 * kLanes <= V; i += 4 * kLanes) {
    const f32x16 a = ld(x + i), b = ld(x + i + kLanes), c = ld(x + i + 2 * kLanes), d = ld(x + i + 3 * kLanes);
    m0 = vmax(m0, a);
    m1 = vmax(m1, b);
    m2 = vmax(m2, c);
    m3 = vmax(m3, d);
    // !(v < inf): NaN or +inf
    nb += (select_lt(a, inf, zero, one) + select_lt(b, inf, zero, one)) +
          (select_lt(c, inf, zero, one) + select_lt(d, inf, zero, one));
  }
  for (; i < V; i += kLanes) {
    const f32x16 a = ld_row(x, i, V);
    m0 = vmax(m0, a);
    nb += select_lt(a, inf, zero, one);
  }
  *bad = hsum16(nb) != 0.f;
  return hmax16(vmax(vmax(m0, m1), vmax(m2, m3)));
}

// The first index holding m (which the row holds).
template <class T>
int64_t first_equal(const T* x, int64_t V, float m) {
  const f32x16 mv = splat(m);
  for (int64_t i = 0; i < V; i += kLanes) {
    const uint32_t k = ge_mask(ld_row(x, i, V), mv);
    if (k) return i + __builtin_ctz(k);
  }
  return 0;  // not reached
}

// ---- pass 2: tempered exps -----------------------------------------------------------------------

// simd.h's vexp for x <= 0 (or NaN-free -inf), bit for bit, without the overflow clamp and test
// that can never apply here: exactly 0 below -87.3 (so exp(-inf) = 0).
TG_INLINE f32x16 vexp_nonpos(f32x16 x) {
  const f32x16 lo = splat(-87.3f);
  const f32x16 orig = x;
  x = vmax(x, lo);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  f32x16 n = (x * 1.44269504088896341f + magic) - magic;
  f32x16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  f32x16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const i32x16 e = (__builtin_convertvector(n, i32x16) + 127) << 23;
  const f32x16 y = p * __builtin_bit_cast(f32x16, e);
  return select_lt(orig, lo, splat(0.f), y);
}

// e = exp((x - m) * s); kind 1: s = inf (only the maxima count: e = x == m), kind 2: s = 0 (every
// finite logit alike: e = x > -inf). The maximum gets exactly 1 in every kind.
template <int Kind>
TG_INLINE f32x16 tempered(f32x16 v, f32x16 mv, f32x16 sv) {
  if constexpr (Kind == 0) return vexp_nonpos((v - mv) * sv);
  else if constexpr (Kind == 1) return select_lt(v, mv, splat(0.f), splat(1.f));
  else return select_lt(splat(-kInf), v, splat(1.f), splat(0.f));
}

// Writes e over whole blocks (0 past V), the sum of each block (blk) and, with TrackMax, its
// maximum (bmax). Returns the total.
template <int Kind, bool TrackMax, class T>
double exp_pass(const T* x, int64_t V, float m, float s, float* e, double* blk, float* bmax) {
  const f32x16 mv = splat(m), sv = splat(s);
  const int64_t full = V / kBlk, nblk = (V + kBlk - 1) / kBlk;
  double z = 0.0;
  for (int64_t j = 0; j < nblk; ++j) {
    const int64_t i = j * kBlk;
    f32x16 a, b, c, d;
    if (j < full) {
      a = tempered<Kind>(ld(x + i), mv, sv);
      b = tempered<Kind>(ld(x + i + kLanes), mv, sv);
      c = tempered<Kind>(ld(x + i + 2 * kLanes), mv, sv);
      d = tempered<Kind>(ld(x + i + 3 * kLanes), mv, sv);
    } else {
      a = tempered<Kind>(ld_row(x, i, V), mv, sv);
      b = tempered<Kind>(ld_row(x, i + kLanes, V), mv, sv);
      c = tempered<Kind>(ld_row(x, i + 2 * kLanes, V), mv, sv);
      d = tempered<Kind>(ld_row(x, i + 3 * kLanes, V), mv, sv);
    }
    store(e + i, a);
    store(e + i + kLanes, b);
    store(e + i + 2 * kLanes, c);
    store(e + i + 3 * kLanes, d);
    const double bs = hsum16((a + b) + (c + d));
    blk[j] = bs;
    z += bs;
    if constexpr (TrackMax) bmax[j] = hmax16(vmax(vmax(a, b), vmax(c, d)));
  }
  return z;
}

// Per-block sums of the e >= t (t > 0), and their total.
double masked_blocks(const float* e, int64_t nblk, float t, double* blk) {
  const f32x16 tv = splat(t), zero = {};
  double z = 0.0;
  for (int64_t j = 0; j < nblk; ++j) {
    const float* p = e + j * kBlk;
    const f32x16 a = load(p), b = load(p + kLanes), c = load(p + 2 * kLanes), d = load(p + 3 * kLanes);
    const f32x16 s = (select_lt(a, tv, zero, a) + select_lt(b, tv, zero, b)) +
                     (select_lt(c, tv, zero, c) + select_lt(d, tv, zero, d));
    const double bs = hsum16(s);
    blk[j] = bs;
    z += bs;
  }
  return z;
}

// The (value, index) of every e >= t (t > 0), in index order, over whole blocks; returns how many.
// Dense: many vectors hold one (branch-free appends with AVX-512); else few do.
template <bool Dense>
int64_t gather_ge(const float* e, int64_t vp, float t, float* cv, int32_t* ci) {
  const f32x16 tv = splat(t);
  int64_t n = 0;
  for (int64_t i = 0; i < vp; i += kLanes) {
    const f32x16 v = load(e + i);
    const uint32_t k = ge_mask(v, tv);
    if ((Dense && kCompress) || k) n = append_lanes_idx(cv, ci, n, e + i, v, k, static_cast<int32_t>(i));
  }
  return n;
}

// Keeps the candidates >= t, in order; returns how many.
int64_t filter_ge(float* cv, int32_t* ci, int64_t n, float t) {
  int64_t w = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float v = cv[r];
    cv[w] = v;
    ci[w] = ci[r];
    w += v >= t;
  }
  return w;
}

// ---- selection on small arrays (no std templates in kernel files) --------------------------------

TG_INLINE void swapf(float& a, float& b) {
  const float t = a;
  a = b;
  b = t;
}

void insertion_sort_desc(float* a, int64_t n) {
  for (int64_t i = 1; i < n; ++i) {
    const float v = a[i];
    int64_t j = i;
    for (; j > 0 && a[j - 1] < v; --j) a[j] = a[j - 1];
    a[j] = v;
  }
}

TG_INLINE float median3(float a, float b, float c) {
  if (a < b) swapf(a, b);  // a >= b
  if (b < c) b = a < c ? a : c;
  return b;
}

// Hoare partition of a[lo..hi] around p (an element of it), descending: on return a[lo..j] >= p,
// a[i..hi] <= p, and everything strictly between j and i equals p.
TG_INLINE void partition_desc(float* a, int64_t lo, int64_t hi, float p, int64_t* pi, int64_t* pj) {
  int64_t i = lo, j = hi;
  while (i <= j) {
    while (a[i] > p) ++i;
    while (a[j] < p) --j;
    if (i <= j) {
      swapf(a[i], a[j]);
      ++i;
      --j;
    }
  }
  *pi = i;
  *pj = j;
}

void sort_desc(float* a, int64_t lo, int64_t hi) {  // a[lo..hi]
  while (hi - lo > 24) {
    const float p = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
    int64_t i, j;
    partition_desc(a, lo, hi, p, &i, &j);
    if (j - lo < hi - i) {  // recurse into the smaller side
      sort_desc(a, lo, j);
      lo = i;
    } else {
      sort_desc(a, i, hi);
      hi = j;
    }
  }
  insertion_sort_desc(a + lo, hi - lo + 1);
}

// The k-th largest (1-based) of a[0..n), reordering a.
float quickselect_desc(float* a, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  const int64_t want = k - 1;
  while (hi - lo > 24) {
    const float p = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
    int64_t i, j;
    partition_desc(a, lo, hi, p, &i, &j);
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return p;
  }
  insertion_sort_desc(a + lo, hi - lo + 1);
  return a[want];
}

// The largest a[j] of a descending array with a[0] + ... + a[j] >= target (ties after j have the
// same value); the last one if rounding leaves the total short.
float mass_threshold_sorted(const float* a, int64_t n, double target) {
  double cum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    cum += a[j];
    if (cum >= target) return a[j];
  }
  return a[n - 1];
}

// ---- radix select on the float bits --------------------------------------------------------------

struct Hist {
  double* mass;    // kBuckets
  uint32_t* count;  // kBuckets
};

typedef double f64x16 __attribute__((vector_size(128)));

// Level-0 histograms over values v[0..n) of their digit (bits >> shift), counting / weighing only
// the v >= lo. The digits and weights of 16 values are made with vector code and staged in small
// arrays, so that the scalar updates are one load, add and store each.
void count_hist_lo(const float* v, int64_t n, float lo, int shift, uint32_t* count) {
  const f32x16 lov = splat(lo);
  alignas(64) uint32_t dig[kLanes];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const f32x16 x = load(v + i);
    // values below lo go to bucket 0, and are taken off its count again
    const u32x16 d = __builtin_bit_cast(u32x16, select_lt(x, lov, splat(0.f), x)) >> shift;
    __builtin_memcpy(dig, &d, sizeof dig);
    __asm__ volatile("" : : "r"(dig) : "memory");
    const uint32_t below = ~ge_mask(x, lov) & 0xFFFFu;
    for (int l = 0; l < kLanes; ++l) ++count[dig[l]];
    count[0] -= __builtin_popcount(below);
  }
  for (; i < n; ++i)
    if (v[i] >= lo) ++count[fbits(v[i]) >> shift];
}

void mass_hist_lo(const float* v, int64_t n, float lo, int shift, double* mass) {
  const f32x16 lov = splat(lo);
  alignas(64) uint32_t dig[kLanes];
  alignas(64) double w[kLanes];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const f32x16 x = load(v + i);
    const u32x16 d = __builtin_bit_cast(u32x16, x) >> shift;
    const f64x16 wd = __builtin_convertvector(select_lt(x, lov, splat(0.f), x), f64x16);
    __builtin_memcpy(dig, &d, sizeof dig);
    __builtin_memcpy(w, &wd, sizeof w);
    __asm__ volatile("" : : "r"(dig), "r"(w) : "memory");  // keep the staging (no lane extracts)
    for (int l = 0; l < kLanes; ++l) mass[dig[l]] += w[l];
  }
  for (; i < n; ++i)
    if (v[i] >= lo) mass[fbits(v[i]) >> shift] += v[i];
}

// Over the values src[0..n) that are >= lo (all non-negative, < 2): with k > 0 the k-th largest
// of them (k <= their number), else the largest tau with mass{v >= tau} >= target (target > 0;
// the smallest positive value if rounding leaves the total short, 0 if none is positive). buf
// has room for n floats and may be src itself.
float radix_select(const float* src, int64_t n, float lo, int64_t k, double target, float* buf, Hist h) {
  const bool by_count = k > 0;
  const float* cur = src;
  uint32_t prefix = 0;
  for (int level = 0; level < 3; ++level) {
    const int shift = kDigitBits * (2 - level);
    const bool first = level == 0;
    if (!first && n <= (by_count ? kSelectMax : kSortMax)) {  // few left
      if (by_count) return quickselect_desc(buf, n, k);
      sort_desc(buf, 0, n - 1);
      return mass_threshold_sorted(buf, n, target);
    }
    // Only digits up to that of 1.0 (0x3F8 at level 0) can be present.
    int d = first ? static_cast<int>(fbits(1.f) >> shift) : kBuckets - 1;
    if (by_count) {
      for (int b = 0; b < kBuckets; ++b) h.count[b] = 0;
      if (first) count_hist_lo(cur, n, lo, shift, h.count);
      else
        for (int64_t i = 0; i < n; ++i) ++h.count[(fbits(cur[i]) >> shift) & (kBuckets - 1)];
      int64_t above = 0;
      for (; d > 0 && above + static_cast<int64_t>(h.count[d]) < k; --d) above += h.count[d];
      k -= above;
    } else {
      for (int b = 0; b < kBuckets; ++b) h.mass[b] = 0.0;
      if (first) mass_hist_lo(cur, n, lo, shift, h.mass);
      else
        for (int64_t i = 0; i < n; ++i) h.mass[(fbits(cur[i]) >> shift) & (kBuckets - 1)] += cur[i];
      double above = 0.0;
      for (; d >= 0 && above + h.mass[d] < target; --d) above += h.mass[d];
      if (d < 0) {  // rounding left the total short of the target: keep every positive value
        for (d = 0; d < kBuckets && !(h.mass[d] > 0.0); ++d) {
        }
        if (d == kBuckets) return 0.f;
        above = 0.0;
        for (int b = kBuckets - 1; b > d; --b) above += h.mass[b];
        target = above + h.mass[d];
      }
      target -= above;
    }
    prefix |= static_cast<uint32_t>(d) << shift;
    if (level == 2) break;
    // Keep only the boundary bucket's values.
    int64_t m = 0;
    if (first) {
      // Bucket d holds the floats in [bitsf(d << shift), bitsf((d + 1) << shift)).
      const float b_lo = fmax1(lo, bitsf(prefix)), b_hi = bitsf(prefix + (1u << shift));
      const f32x16 lov = splat(b_lo), hiv = splat(b_hi);
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes) {
        const f32x16 v = load(cur + i);
        const uint32_t q = ge_mask(v, lov) & ~ge_mask(v, hiv);
        if (kCompress || q) m = append_lanes(buf, m, cur + i, v, q);
      }
      for (; i < n; ++i) {
        const float v = cur[i];
        buf[m] = v;
        m += v >= b_lo && v < b_hi;
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const float v = cur[i];
        buf[m] = v;
        m += ((fbits(v) >> shift) & (kBuckets - 1)) == static_cast<uint32_t>(d);
      }
    }
    cur = buf;
    n = m;
  }
  return bitsf(prefix);
}

// A lower bound of the k-th largest of v[0..n) (k <= n): the low edge of the level-0 bucket
// (1/8 of an octave) that holds it, so at least k values are >= it.
float kth_bound(const float* v, int64_t n, int64_t k, uint32_t* count) {
  constexpr int shift = 2 * kDigitBits;
  for (int b = 0; b < kBuckets; ++b) count[b] = 0;
  for (int64_t i = 0; i < n; ++i) ++count[fbits(v[i]) >> shift];
  int d = static_cast<int>(fbits(1.f) >> shift);
  for (int64_t above = 0; d > 0 && above + static_cast<int64_t>(count[d]) < k; --d) above += count[d];
  return bitsf(static_cast<uint32_t>(d) << shift);
}

// ---- inverse CDF ----------------------------------------------------------------------------------

// Over the whole row: the first index whose running sum of e (those >= t) exceeds u * z, where
// blk holds the per-block sums of those and z their total; the last kept positive e if rounding
// runs past the end.
int64_t sample_blocks(const float* e, int64_t V, const double* blk, int64_t nblk, double z, double u, float t) {
  const double target = u * z;
  double run = 0.0;
  int64_t j = 0;
  for (; j < nblk && run + blk[j] <= target; ++j) run += blk[j];
  for (int64_t i = j * kBlk; i < V; ++i) {
    const float v = e[i];
    if (v >= t) {
      run += v;
      if (run > target) return i;
    }
  }
  for (int64_t i = V - 1; i > 0; --i)
    if (e[i] > 0.f && e[i] >= t) return i;
  return 0;
}

double cand_mass(const float* cv, int64_t n, float t) {
  double z = 0.0;
  for (int64_t r = 0; r < n; ++r)
    if (cv[r] >= t) z += cv[r];
  return z;
}

// The same over the gathered candidates (in index order).
int64_t sample_cand(const float* cv, const int32_t* ci, int64_t n, double u, float t) {
  const double target = u * cand_mass(cv, n, t);
  double run = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    if (cv[r] >= t) {
      run += cv[r];
      if (run > target) return ci[r];
    }
  }
  for (int64_t r = n - 1; r >= 0; --r)
    if (cv[r] > 0.f && cv[r] >= t) return ci[r];
  return ci[0];  // not reached: the maximum (1) is always kept
}

// The smallest float f with f >= x (x in [0, 1]).
float float_at_least(double x) {
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = bitsf(fbits(f) + 1);
  return f;
}

// ---- top_p over the whole row ----------------------------------------------------------------------

constexpr int64_t kHead = 64;       // the head: about the 64 largest e
constexpr int64_t kSubStride = 8;   // the tail's subsample: every 8th vector

// The exact masses of the e >= hi and of the e in [lo, hi) (per-block float sums, added in
// double), and the values in [lo, hi) appended to out (room for vp + 16); returns how many.
int64_t bracket_pass(const float* e, int64_t nblk, float lo, float hi, double* mass_hi, double* mass_in,
                     float* out) {
  const f32x16 lov = splat(lo), hiv = splat(hi), zero = {};
  double z_hi = 0.0, z_in = 0.0;
  int64_t n = 0;
  for (int64_t j = 0; j < nblk; ++j) {
    const float* p = e + j * kBlk;
    f32x16 acc_hi = zero, acc_in = zero;
    for (int q = 0; q < 4; ++q) {
      const f32x16 v = load(p + q * kLanes);
      const f32x16 below_hi = select_lt(v, hiv, v, zero);
      acc_hi += v - below_hi;
      acc_in += select_lt(below_hi, lov, zero, below_hi);
      const uint32_t k = ge_mask(v, lov) & ~ge_mask(v, hiv) & 0xFFFFu;
      if (kCompress || k) n = append_lanes(out, n, p + q * kLanes, v, k);
    }
    z_hi += hsum16(acc_hi);
    z_in += hsum16(acc_in);
  }
  *mass_hi = z_hi;
  *mass_in = z_in;
  return n;
}

// Predicts from a subsample of the e < h (every 8th vector of 16) a bracket [lo, hi) that
// holds the top_p threshold, i.e. where the mass counted from the top reaches the target, given
// that the e >= h hold m_head of the row's z. The subsample's bucket masses (1/8 octave) estimate
// the fraction of the tail's mass above each bucket edge; the bracket spans that estimate +- 4
// standard errors (from the subsample's second moment) + 0.001. Returns false when the subsample
// is too thin.
bool predict_bracket(const float* e, int64_t vp, float h, double m_head, double target, double z, float* tmp,
                     double* mass, float* lo, float* hi) {
  const f32x16 hv = splat(h);
  int64_t ns = 0;
  for (int64_t i = 0; i < vp; i += kSubStride * kLanes) {
    const f32x16 v = load(e + i);
    ns = append_lanes(tmp, ns, e + i, v, ~ge_mask(v, hv) & 0xFFFFu);
  }
  if (ns < 256) return false;
  for (int b = 0; b < kBuckets; ++b) mass[b] = 0.0;
  mass_hist_lo(tmp, ns, 0.f, 2 * kDigitBits, mass);
  auto upper = [](int b) { return static_cast<double>(bitsf(static_cast<uint32_t>(b + 1) << (2 * kDigitBits))); };
  double s1 = 0.0, s2 = 0.0;  // the subsample's mass and (bounded above) second moment
  const int top = static_cast<int>(fbits(fmin1(h, 1.f)) >> (2 * kDigitBits));  // no value above
  for (int b = 0; b <= top; ++b) {
    s1 += mass[b];
    s2 += mass[b] * upper(b);
  }
  if (!(s1 > 0.0)) return false;
  const double need = (target - m_head) / (z - m_head);  // the fraction of the tail's mass needed
  double cum = 0.0, c2 = 0.0;
  for (int b = top; b > 0 && cum + mass[b] < need * s1; --b) {
    cum += mass[b];
    c2 += mass[b] * upper(b);
  }
  // Var of the estimated fraction above a threshold, by the delta method: with a the indicator
  // of being above, sum y^2 (a - need)^2 / s1^2.
  const double var = ((1 - need) * (1 - need) * c2 + need * need * (s2 - c2)) / (s1 * s1);
  const double delta = 4.0 * __builtin_sqrt(var) + 1e-3;
  *hi = h;
  *lo = 0.f;
  if (need - delta > 0.0) {
    cum = 0.0;
    int b = top;
    for (; b > 0 && cum + mass[b] < (need - delta) * s1; --b) cum += mass[b];
    *hi = fmin1(h, static_cast<float>(upper(b)));
  }
  if (need + delta < 1.0) {
    cum = 0.0;
    int b = top;
    for (; b > 0 && cum + mass[b] < (need + delta) * s1; --b) cum += mass[b];
    *lo = bitsf(static_cast<uint32_t>(b) << (2 * kDigitBits));
  }
  return *lo < *hi;
}

// The top_p threshold over the whole row (nothing gathered, no lower bound): the largest tau
// with mass{e >= tau} >= target, z the row's mass, bmax its block maxima (nblk >= 2 kHead).
// 1. The head, every e >= a lower bound of the kHead-th largest block maximum (a few dozen
//    tokens), is gathered; if it holds the target (a peaked row), the threshold is among them and
//    they stay in cv/ci as the candidates (*nc their count).
// 2. Else (a flat row) a subsample predicts a bracket around the threshold; one vector pass gets
//    the exact mass above the bracket and the values in it, and if the target indeed falls in the
//    bracket, the radix select runs on those values only.
// 3. Else the radix select runs over the whole row.
float top_p_row(const float* e, int64_t V, int64_t vp, int64_t nblk, const float* bmax, double target, double z,
                float* cv, int32_t* ci, float* tmp, Hist hist, int64_t* nc) {
  *nc = -1;
  float h = kth_bound(bmax, nblk, kHead, hist.count);
  double m_head = 0.0;
  if (h > 0.f) {
    const int64_t nh = gather_ge<false>(e, vp, h, cv, ci);
    m_head = cand_mass(cv, nh, 0.f);
    if (m_head >= target) {
      *nc = nh;
      for (int64_t r = 0; r < nh; ++r) tmp[r] = cv[r];
      if (nh <= kSortMax) {
        sort_desc(tmp, 0, nh - 1);
        return mass_threshold_sorted(tmp, nh, target);
      }
      return radix_select(tmp, nh, 0.f, 0, target, tmp, hist);
    }
  } else {
    h = 2.f;  // no useful head: all of the row is tail
  }
  float lo, hi;
  if (predict_bracket(e, vp, h, m_head, target, z, tmp, hist.mass, &lo, &hi)) {
    double mass_hi, m_br;
    const int64_t nb = bracket_pass(e, nblk, lo, hi, &mass_hi, &m_br, tmp);
    if (mass_hi < target && target <= mass_hi + m_br && nb > 0)
      return radix_select(tmp, nb, 0.f, 0, target - mass_hi, tmp, hist);
  }
  return radix_select(e, V, 0.f, 0, target, tmp, hist);
}

// ---- one row ----------------------------------------------------------------------------------------

template <class T>
int64_t sample_row(const T* x, int64_t V, const SampleRow& p, void* scratch, double* probs) {
  bool bad = false;
  const float m = row_max(x, V, &bad);
  if (bad) return kSampleBadValue;
  if (m == -kInf) return kSampleAllNegInf;
  if (p.temperature == 0.0 || V == 1) {
    const int64_t id = first_equal(x, V, m);
    if (probs) {
      for (int64_t i = 0; i < V; ++i) probs[i] = 0.0;
      probs[id] = 1.0;
    }
    return id;
  }

  // Scratch layout (kernel_api.h): e, cv, ci, tmp (vp + 64 each: room for whole-vector stores
  // past the last value), blk, bmax, histogram.
  const int64_t vp = sample_padded(V), vs = vp + 64, nblk = vp / kBlk, nb_pad = (vs / kBlk + 15) / 16 * 16;
  char* s8 = static_cast<char*>(scratch);
  float* e = reinterpret_cast<float*>(s8);
  float* cv = e + vs;
  int32_t* ci = reinterpret_cast<int32_t*>(cv + vs);
  float* tmp = reinterpret_cast<float*>(ci + vs);
  double* blk = reinterpret_cast<double*>(tmp + vs);
  float* bmax = reinterpret_cast<float*>(blk + nb_pad);
  Hist hist{reinterpret_cast<double*>(bmax + nb_pad), nullptr};
  hist.count = reinterpret_cast<uint32_t*>(hist.mass + kBuckets);

  const float s = static_cast<float>(1.0 / p.temperature);
  const bool use_k = p.top_k > 0 && p.top_k < V;
  const bool use_p = p.top_p < 1.0;
  const bool use_min = p.min_p > 0.0;
  // The block-maximum bound for top_k needs k blocks, and is tight while k is well below them;
  // top_p on a long row uses it for its head.
  const bool bound_k = use_k && 2 * p.top_k <= nblk;
  const bool head_p = use_p && nblk >= 2 * kHead;
  const bool track = (bound_k || head_p) && s != kInf && s != 0.f;
  double z;
  if (s == kInf) z = exp_pass<1, false>(x, V, m, s, e, blk, bmax);
  else if (s == 0.f) z = exp_pass<2, false>(x, V, m, s, e, blk, bmax);
  else if (track) z = exp_pass<0, true>(x, V, m, s, e, blk, bmax);
  else z = exp_pass<0, false>(x, V, m, s, e, blk, bmax);

  float t = 0.f;          // the threshold so far; the kept tokens are the e >= t
  int64_t nc = -1;        // >= 0: cv/ci hold every e >= t (and maybe some below), in index order
  float blk_t = 0.f;      // the threshold blk's sums are for
  double z_t = z;         // the mass of the e >= t
  if (use_k) {
    const int64_t k = p.top_k;
    float t0 = 0.f;
    if (bound_k && track) t0 = kth_bound(bmax, nblk, k, hist.count);
    if (t0 > 0.f) {
      nc = gather_ge<false>(e, vp, t0, cv, ci);
      for (int64_t r = 0; r < nc; ++r) tmp[r] = cv[r];
      t = nc <= kSelectMax ? quickselect_desc(tmp, nc, k) : radix_select(tmp, nc, 0.f, k, 0.0, tmp, hist);
      z_t = cand_mass(cv, nc, t);
    } else {
      t = radix_select(e, V, 0.f, k, 0.0, tmp, hist);
      if (t > 0.f) {
        z_t = masked_blocks(e, nblk, t, blk);
        blk_t = t;
      }
    }
  }
  const float t_min = use_min ? float_at_least(p.min_p) : 0.f;
  const bool raised = t_min > t;
  if (raised) {
    // min_p raises the bar. With top_p as well, top_p can only raise it further, and does so
    // only if the tokens above t_min hold the target mass; else t_min is the threshold.
    if (nc < 0) nc = gather_ge<true>(e, vp, t_min, cv, ci);
    else nc = filter_ge(cv, ci, nc, t_min);
    t = t_min;
  }
  if (use_p && (!raised || cand_mass(cv, nc, t) >= p.top_p * z_t)) {
    const double target = p.top_p * z_t;
    if (nc >= 0) {
      int64_t n = 0;
      for (int64_t r = 0; r < nc; ++r) {
        tmp[n] = cv[r];
        n += cv[r] >= t;
      }
      if (n <= kSortMax) {
        sort_desc(tmp, 0, n - 1);
        t = fmax1(t, mass_threshold_sorted(tmp, n, target));
      } else {
        t = fmax1(t, radix_select(tmp, n, 0.f, 0, target, tmp, hist));
      }
    } else if (t == 0.f && head_p && track) {
      t = top_p_row(e, V, vp, nblk, bmax, target, z_t, cv, ci, tmp, hist, &nc);
    } else {
      t = fmax1(t, radix_select(e, V, t, 0, target, tmp, hist));
    }
  }

  if (probs) {
    // The distribution the draw below samples from.
    double zk = 0.0;
    for (int64_t i = 0; i < V; ++i)
      if (e[i] >= t) zk += e[i];
    for (int64_t i = 0; i < V; ++i) probs[i] = e[i] >= t ? e[i] / zk : 0.0;
    return 0;
  }
  if (nc >= 0) return sample_cand(cv, ci, nc, p.u, t);
  if (t > 0.f && t != blk_t) z_t = masked_blocks(e, nblk, t, blk);
  else if (t == 0.f) z_t = z;
  return sample_blocks(e, V, blk, nblk, z_t, p.u, t);
}

}  // namespace

int64_t sample_row_f32(const float* logits, int64_t V, const SampleRow& p, void* scratch, double* probs) {
  return sample_row(logits, V, p, scratch, probs);
}
int64_t sample_row_bf16(const uint16_t* logits, int64_t V, const SampleRow& p, void* scratch, double* probs) {
  return sample_row(logits, V, p, scratch, probs);
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
