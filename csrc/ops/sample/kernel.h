// Fused sampling from a row of logits, ISA-generic (compiled once per ISA by kernel_base.cpp,
// kernel_avx2.cpp and kernel_avx512.cpp; see common/simd.h).
//
// Per row (the semantics are in tinygpt/ops/reference.py, sample_probs):
//   1. max m over the row, checking for NaN / +inf (vector pass);
//      temperature 0: the first index holding m (vector pass), done;
//   2. e_i = exp((x_i - m) * s), s = fp32(1 / T), into a scratch row, with per-block (64) sums and,
//      when top_k or top_p need them, per-block maxima (vector pass). e_max is exactly 1;
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
//        sorting the gathered candidates when they are few; on a whole long row, from its head
//        (peaked rows) or from a bracket predicted by a subsample and checked exactly (flat rows),
//        else the same radix select with per-bucket masses (double) over the whole row;
//   4. inverse CDF in index order over the kept tokens (e >= the final threshold): over the
//      gathered candidates, or over the per-block sums (masked again for a threshold) and then
//      the one block that holds u * Z.
// Sums are in double. Nothing here allocates; the caller passes the scratch.
//
// The vector code works on the machine's native width (fn: 16 lanes with AVX-512, 8 with AVX2, 4
// on the baseline) rather than simd.h's 16-lane vectors: GCC takes those apart through the stack
// for comparisons and selects in the AVX2 and baseline builds, which made these passes 2-5x
// slower there. The AVX-512 build is the same code either way.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "common/simd.h"
#include "ops/sample/kernel_api.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

constexpr float kInf = __builtin_inff();
constexpr int64_t kBlk = kSampleBlock;  // elements per block
constexpr int kDigitBits = 10;
constexpr int kBuckets = 1 << kDigitBits;
constexpr int64_t kSortMax = 96;        // values up to this many are sorted (mass mode)
constexpr int64_t kSelectMax = 1024;    // values up to this many are quickselected (count mode)

TG_INLINE uint32_t fbits(float v) { return __builtin_bit_cast(uint32_t, v); }
TG_INLINE float bitsf(uint32_t b) { return __builtin_bit_cast(float, b); }
TG_INLINE float fmax1(float a, float b) { return a < b ? b : a; }
TG_INLINE float fmin1(float a, float b) { return a < b ? a : b; }
TG_INLINE float ld1(const float* p) { return *p; }
TG_INLINE float ld1(const uint16_t* p) { return bitsf(static_cast<uint32_t>(*p) << 16); }

// ---- native-width vectors ---------------------------------------------------------------------------

#if defined(__AVX512F__)
constexpr int kN = 16;
#elif defined(__AVX__)
constexpr int kN = 8;
#else
constexpr int kN = 4;
#endif
constexpr int kPerBlk = static_cast<int>(kBlk) / kN;  // vectors per block
typedef float fn __attribute__((vector_size(4 * kN)));
typedef int32_t in __attribute__((vector_size(4 * kN)));
typedef uint32_t un __attribute__((vector_size(4 * kN)));
typedef uint16_t hn __attribute__((vector_size(2 * kN)));
typedef double dn __attribute__((vector_size(8 * kN)));
typedef float f32x4 __attribute__((vector_size(16)));

TG_INLINE fn splatn(float x) { return fn{} + x; }
TG_INLINE fn ldn(const float* p) {
  fn v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
TG_INLINE fn ldn(const uint16_t* p) {  // bf16: the high half of a float
  hn h;
  __builtin_memcpy(&h, p, sizeof h);
  return __builtin_bit_cast(fn, __builtin_convertvector(h, un) << 16);
}
TG_INLINE void stn(float* p, fn v) { __builtin_memcpy(p, &v, sizeof v); }
TG_INLINE fn seln(fn a, fn b, fn x, fn y) { return a < b ? x : y; }  // lane-wise a < b ? x : y
TG_INLINE fn maxn(fn a, fn b) { return a < b ? b : a; }

// Elements [i, i + kN) of a row of V, -inf past its end.
template <class T>
TG_INLINE fn ldn_row(const T* x, int64_t i, int64_t V) {
  if (i + kN <= V) return ldn(x + i);
  fn v = splatn(-kInf);
  for (int l = 0; l < kN && i + l < V; ++l) v[l] = ld1(x + i + l);
  return v;
}

// Horizontal sum and maximum, as trees (templates, so that only the native width's branch is
// compiled).
template <class V>
TG_INLINE f32x4 quarter_sum(V v) {
  if constexpr (sizeof(V) == 64) {
    const f32x4 q0 = __builtin_shufflevector(v, v, 0, 1, 2, 3), q1 = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    const f32x4 q2 = __builtin_shufflevector(v, v, 8, 9, 10, 11), q3 = __builtin_shufflevector(v, v, 12, 13, 14, 15);
    return (q0 + q1) + (q2 + q3);
  } else if constexpr (sizeof(V) == 32) {
    return __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
  } else {
    return v;
  }
}
TG_INLINE float hsumn(fn v) {
  const f32x4 s = quarter_sum<fn>(v);
  return (s[0] + s[2]) + (s[1] + s[3]);
}
TG_INLINE f32x4 max4(f32x4 a, f32x4 b) { return a < b ? b : a; }
template <class V>
TG_INLINE float hmax_tree(V v) {
  f32x4 m;
  if constexpr (sizeof(V) == 64) {
    const f32x4 q0 = __builtin_shufflevector(v, v, 0, 1, 2, 3), q1 = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    const f32x4 q2 = __builtin_shufflevector(v, v, 8, 9, 10, 11), q3 = __builtin_shufflevector(v, v, 12, 13, 14, 15);
    m = max4(max4(q0, q1), max4(q2, q3));
  } else if constexpr (sizeof(V) == 32) {
    m = max4(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
  } else {
    m = v;
  }
  return fmax1(fmax1(m[0], m[2]), fmax1(m[1], m[3]));
}
TG_INLINE float hmaxn(fn v) { return hmax_tree<fn>(v); }

// Bit l set where a[l] >= t[l] (no NaN here).
TG_INLINE uint32_t ge_mask(fn a, fn t) {
#if defined(__AVX512F__)
  return static_cast<uint32_t>(_mm512_cmp_ps_mask((__m512)a, (__m512)t, _CMP_GE_OQ));
#elif defined(__AVX__)
  return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps((__m256)a, (__m256)t, _CMP_GE_OQ)));
#elif defined(__SSE2__)
  return static_cast<uint32_t>(_mm_movemask_ps(_mm_cmpge_ps((__m128)a, (__m128)t)));
#else
  uint32_t m = 0;
  for (int l = 0; l < kN; ++l) m |= static_cast<uint32_t>(a[l] >= t[l]) << l;
  return m;
#endif
}

// Appending the lanes of a vector picked by a bit mask to an array, in order, without a branch
// per lane: AVX-512 compresses, AVX2 permutes by a 256-entry table, the baseline stores every
// lane and advances by its bit. Callers skip vectors with an empty mask only where those are the
// rule (a mispredicted test costs more than the append).
#if defined(__AVX2__) && !defined(__AVX512F__)
struct PackTable {
  int32_t idx[256][8];  // the set lanes of each 8-bit mask, first
  uint8_t count[256];
};
constexpr PackTable make_pack_table() {
  PackTable t{};
  for (int m = 0; m < 256; ++m) {
    int n = 0;
    for (int l = 0; l < 8; ++l)
      if ((m >> l) & 1) t.idx[m][n++] = l;
    t.count[m] = static_cast<uint8_t>(n);
  }
  return t;
}
alignas(64) constexpr PackTable kPack = make_pack_table();
#endif

// Appends the lanes of v = ldn(src) whose bit is set in k to out[n...], in order, and returns the
// new count. Whole vectors are stored: out needs kN floats of room past its end. out may be src's
// array if n <= the index of src (the vector is read before the store).
TG_INLINE int64_t append_lanes(float* out, int64_t n, const float* src, fn v, uint32_t k) {
#if defined(__AVX512F__)
  (void)src;
  _mm512_storeu_ps(out + n, _mm512_maskz_compress_ps(static_cast<__mmask16>(k), (__m512)v));
  return n + __builtin_popcount(k);
#elif defined(__AVX2__)
  (void)src;
  const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.idx[k]));
  _mm256_storeu_ps(out + n, _mm256_permutevar8x32_ps((__m256)v, idx));
  return n + kPack.count[k];
#else
  (void)v;
  for (int l = 0; l < kN; ++l) {
    out[n] = src[l];
    n += (k >> l) & 1u;
  }
  return n;
#endif
}

// The same with the lanes' indices base + l.
TG_INLINE int64_t append_lanes_idx(float* out, int32_t* idx, int64_t n, const float* src, fn v, uint32_t k,
                                   int32_t base) {
#if defined(__AVX512F__)
  (void)src;
  const __m512i ids = _mm512_add_epi32(_mm512_set1_epi32(base),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  _mm512_storeu_ps(out + n, _mm512_maskz_compress_ps(static_cast<__mmask16>(k), (__m512)v));
  _mm512_storeu_si512(idx + n, _mm512_maskz_compress_epi32(static_cast<__mmask16>(k), ids));
  return n + __builtin_popcount(k);
#elif defined(__AVX2__)
  (void)src;
  const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.idx[k]));
  const __m256i ids = _mm256_add_epi32(_mm256_set1_epi32(base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  _mm256_storeu_ps(out + n, _mm256_permutevar8x32_ps((__m256)v, perm));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + n), _mm256_permutevar8x32_epi32(ids, perm));
  return n + kPack.count[k];
#else
  (void)v;
  for (int l = 0; l < kN; ++l) {
    out[n] = src[l];
    idx[n] = base + l;
    n += (k >> l) & 1u;
  }
  return n;
#endif
}

// ---- pass 1: the maximum, and whether the row holds NaN or +inf ---------------------------------

// The row's maximum; *bad when it holds NaN or +inf. +inf shows in the maximum; NaN in a sum of
// the logits scaled by 2^-100 (so that no finite sum overflows), which is NaN exactly when the row
// holds NaN, or +inf and -inf together.
template <class T>
float row_max(const T* x, int64_t V, bool* bad) {
  const fn tiny = splatn(0x1p-100f);
  fn m0 = splatn(-kInf), m1 = m0, m2 = m0, m3 = m0, s0 = {}, s1 = {};
  int64_t i = 0;
  for (; i + 4 * kN <= V; i += 4 * kN) {
    const fn a = ldn(x + i), b = ldn(x + i + kN), c = ldn(x + i + 2 * kN), d = ldn(x + i + 3 * kN);
    m0 = maxn(m0, a);
    m1 = maxn(m1, b);
    m2 = maxn(m2, c);
    m3 = maxn(m3, d);
    s0 += a * tiny + b * tiny;
    s1 += c * tiny + d * tiny;
  }
  float m = hmaxn(maxn(maxn(m0, m1), maxn(m2, m3)));
  float sum = hsumn(s0 + s1);
  for (; i < V; ++i) {
    const float v = ld1(x + i);
    m = fmax1(m, v);
    sum += v * 0x1p-100f;
  }
  *bad = m == kInf || sum != sum;
  return m;
}

// The first index holding m (which the row holds).
template <class T>
int64_t first_equal(const T* x, int64_t V, float m) {
  const fn mv = splatn(m);
  int64_t i = 0;
  for (; i + kN <= V; i += kN) {
    const uint32_t k = ge_mask(ldn(x + i), mv);
    if (k) return i + __builtin_ctz(k);
  }
  for (; i < V; ++i)
    if (ld1(x + i) >= m) return i;
  return 0;  // not reached
}

// ---- pass 2: tempered exps -----------------------------------------------------------------------

// simd.h's vexp for x <= 0 (or -inf), bit for bit, without the overflow clamp and test that can
// never apply here: exactly 0 below -87.3 (so exp(-inf) = 0). In place on U vectors at once,
// statement by statement, so that their dependency chains interleave (U = 16 / kN: 16 lanes in
// flight, as simd.h's 16-lane vectors have).
constexpr int kU = 16 / kN;
template <int U>
TG_INLINE void vexp_nonpos(fn* x) {
  const fn lo = splatn(-87.3f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  fn orig[U], n[U], r[U], p[U];
  for (int u = 0; u < U; ++u) {
    orig[u] = x[u];
    x[u] = maxn(x[u], lo);
  }
  for (int u = 0; u < U; ++u) n[u] = (x[u] * 1.44269504088896341f + magic) - magic;
  for (int u = 0; u < U; ++u) r[u] = x[u] - n[u] * 0.693359375f + n[u] * 2.12194440e-4f;
  for (int u = 0; u < U; ++u) p[u] = splatn(1.9875691500e-4f) * r[u] + 1.3981999507e-3f;
  for (int u = 0; u < U; ++u) p[u] = p[u] * r[u] + 8.3334519073e-3f;
  for (int u = 0; u < U; ++u) p[u] = p[u] * r[u] + 4.1665795894e-2f;
  for (int u = 0; u < U; ++u) p[u] = p[u] * r[u] + 1.6666665459e-1f;
  for (int u = 0; u < U; ++u) p[u] = p[u] * r[u] + 5.0000001201e-1f;
  for (int u = 0; u < U; ++u) p[u] = p[u] * (r[u] * r[u]) + r[u] + 1.0f;
  for (int u = 0; u < U; ++u) {
    const in e = (__builtin_convertvector(n[u], in) + 127) << 23;
    x[u] = seln(orig[u], lo, splatn(0.f), p[u] * __builtin_bit_cast(fn, e));
  }
}

// e = exp((x - m) * s) for U vectors in place; kind 1: s = inf (only the maxima count: e = x == m),
// kind 2: s = 0 (every finite logit alike: e = x > -inf). The maximum gets exactly 1 in every kind.
template <int Kind, int U>
TG_INLINE void tempered(fn* v, fn mv, fn sv) {
  if constexpr (Kind == 0) {
    for (int u = 0; u < U; ++u) v[u] = (v[u] - mv) * sv;
    vexp_nonpos<U>(v);
  } else {
    for (int u = 0; u < U; ++u)
      v[u] = Kind == 1 ? seln(v[u], mv, splatn(0.f), splatn(1.f)) : seln(splatn(-kInf), v[u], splatn(1.f), splatn(0.f));
  }
}

// One block of e from x + i (Full: all of it inside the row, else -inf past V): stores it,
// returns its sum and (with TrackMax) writes its maximum.
template <int Kind, bool TrackMax, bool Full, class T>
TG_INLINE double exp_block(const T* x, int64_t i, int64_t V, fn mv, fn sv, float* e, float* bmax) {
  fn acc0 = {}, acc1 = {}, mx = {};
#pragma GCC unroll 16
  for (int q = 0; q < kPerBlk; q += kU) {
    fn v[kU];
    for (int u = 0; u < kU; ++u) v[u] = Full ? ldn(x + i + (q + u) * kN) : ldn_row(x, i + (q + u) * kN, V);
    tempered<Kind, kU>(v, mv, sv);
    for (int u = 0; u < kU; ++u) {
      stn(e + i + (q + u) * kN, v[u]);
      if ((q + u) & 1) acc1 += v[u];
      else acc0 += v[u];
      if constexpr (TrackMax) mx = maxn(mx, v[u]);
    }
  }
  if constexpr (TrackMax) *bmax = hmaxn(mx);
  return hsumn(acc0 + acc1);
}

// Writes e over whole blocks (0 past V), the sum of each block (blk) and, with TrackMax, its
// maximum (bmax). Returns the total.
template <int Kind, bool TrackMax, class T>
double exp_pass(const T* x, int64_t V, float m, float s, float* e, double* blk, float* bmax) {
  const fn mv = splatn(m), sv = splatn(s);
  const int64_t full = V / kBlk, nblk = (V + kBlk - 1) / kBlk;
  double z = 0.0;
  for (int64_t j = 0; j < full; ++j) {
    blk[j] = exp_block<Kind, TrackMax, true>(x, j * kBlk, V, mv, sv, e, bmax + j);
    z += blk[j];
  }
  if (full < nblk) {
    blk[full] = exp_block<Kind, TrackMax, false>(x, full * kBlk, V, mv, sv, e, bmax + full);
    z += blk[full];
  }
  return z;
}

// Per-block sums of the e >= t (t > 0), and their total.
double masked_blocks(const float* e, int64_t nblk, float t, double* blk) {
  const fn tv = splatn(t), zero = {};
  double z = 0.0;
  for (int64_t j = 0; j < nblk; ++j) {
    const float* p = e + j * kBlk;
    fn acc0 = {}, acc1 = {};
    for (int q = 0; q < kPerBlk; q += 2) {
      const fn a = ldn(p + q * kN), b = ldn(p + (q + 1) * kN);
      acc0 += seln(a, tv, zero, a);
      acc1 += seln(b, tv, zero, b);
    }
    const double bs = hsumn(acc0 + acc1);
    blk[j] = bs;
    z += bs;
  }
  return z;
}

// The (value, index) of every e >= t (t > 0), in index order, over whole blocks; returns how many.
// Dense: many vectors hold one (every vector is appended, branch-free); else few do.
template <bool Dense>
int64_t gather_ge(const float* e, int64_t vp, float t, float* cv, int32_t* ci) {
  const fn tv = splatn(t);
  int64_t n = 0;
  for (int64_t i = 0; i < vp; i += kN) {
    const fn v = ldn(e + i);
    const uint32_t k = ge_mask(v, tv);
    if (Dense || k) n = append_lanes_idx(cv, ci, n, e + i, v, k, static_cast<int32_t>(i));
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
  double* mass;     // kBuckets
  uint32_t* count;  // kBuckets
};

// Level-0 histograms over values v[0..n) of their digit (bits >> shift), counting / weighing only
// the v >= lo. The digits and weights of a vector are made with vector code and staged in small
// arrays, so that the scalar updates are one load, add and store each.
void count_hist_lo(const float* v, int64_t n, float lo, int shift, uint32_t* count) {
  const fn lov = splatn(lo);
  alignas(64) uint32_t dig[kN];
  int64_t i = 0;
  for (; i + kN <= n; i += kN) {
    const fn x = ldn(v + i);
    const un d = __builtin_bit_cast(un, x) >> shift;
    __builtin_memcpy(dig, &d, sizeof dig);
    const uint32_t below = ~ge_mask(x, lov) & ((1u << kN) - 1u);
    __asm__ volatile("" : : "r"(dig) : "memory");  // keep the staging (no lane extracts)
    for (int l = 0; l < kN; ++l) ++count[dig[l]];
    // the values below lo are taken off again
    for (uint32_t k = below; k; k &= k - 1) --count[dig[__builtin_ctz(k)]];
  }
  for (; i < n; ++i)
    if (v[i] >= lo) ++count[fbits(v[i]) >> shift];
}

void mass_hist_lo(const float* v, int64_t n, float lo, int shift, double* mass) {
  const fn lov = splatn(lo), zero = {};
  alignas(64) uint32_t dig[kN];
  alignas(64) double w[kN];
  int64_t i = 0;
  for (; i + kN <= n; i += kN) {
    const fn x = ldn(v + i);
    const un d = __builtin_bit_cast(un, x) >> shift;
    const dn wd = __builtin_convertvector(seln(x, lov, zero, x), dn);
    __builtin_memcpy(dig, &d, sizeof dig);
    __builtin_memcpy(w, &wd, sizeof w);
    __asm__ volatile("" : : "r"(dig), "r"(w) : "memory");  // keep the staging (no lane extracts)
    for (int l = 0; l < kN; ++l) mass[dig[l]] += w[l];
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
      const fn lov = splatn(b_lo), hiv = splatn(b_hi);
      int64_t i = 0;
      for (; i + kN <= n; i += kN) {
        const fn v = ldn(cur + i);
        const uint32_t q = ge_mask(v, lov) & ~ge_mask(v, hiv);
        m = append_lanes(buf, m, cur + i, v, q);
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
  const fn lov = splatn(lo), hiv = splatn(hi), zero = {};
  double z_hi = 0.0, z_in = 0.0;
  int64_t n = 0;
  for (int64_t j = 0; j < nblk; ++j) {
    const float* p = e + j * kBlk;
    fn acc_hi = zero, acc_in = zero;
    for (int q = 0; q < kPerBlk; ++q) {
      const fn v = ldn(p + q * kN);
      const fn below_hi = seln(v, hiv, v, zero);
      acc_hi += v - below_hi;
      acc_in += seln(below_hi, lov, zero, below_hi);
      const uint32_t k = ge_mask(v, lov) & ~ge_mask(v, hiv);
      n = append_lanes(out, n, p + q * kN, v, k);
    }
    z_hi += hsumn(acc_hi);
    z_in += hsumn(acc_in);
  }
  *mass_hi = z_hi;
  *mass_in = z_in;
  return n;
}

// Predicts from a subsample of the e < h (every 8th stretch of 16) a bracket [lo, hi) that holds
// the top_p threshold, i.e. where the mass counted from the top reaches the target, given that
// the e >= h hold m_head of the row's z. The subsample's bucket masses (1/8 octave) estimate the
// fraction of the tail's mass above each bucket edge; the bracket spans that estimate +- 4
// standard errors (from the subsample's second moment) + 0.001. Returns false when the subsample
// is too thin.
bool predict_bracket(const float* e, int64_t vp, float h, double m_head, double target, double z, float* tmp,
                     double* mass, float* lo, float* hi) {
  const fn hv = splatn(h);
  int64_t ns = 0;
  for (int64_t i = 0; i < vp; i += kSubStride * 16) {
    for (int q = 0; q < 16 / kN; ++q) {
      const fn v = ldn(e + i + q * kN);
      ns = append_lanes(tmp, ns, e + i + q * kN, v, ~ge_mask(v, hv) & ((1u << kN) - 1u));
    }
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
