// Portable SIMD for the CPU kernels, on GCC/Clang vector extensions. A kernel's code is compiled
// once per instruction set (files *_base.cpp, *_avx2.cpp, *_avx512.cpp, see CMakeLists.txt) with
// TINYGPT_ISA naming the namespace it lives in, so that no inline code compiled for one ISA can
// be picked by the linker for another. The same 16-lane type becomes one zmm register with
// AVX-512, two ymm with AVX2 and four xmm on the baseline. Everything here has internal linkage;
// kernel files must not include torch or std templates for the same reason.
#pragma once

#include <cstdint>

#ifndef TINYGPT_ISA
#error "compile this file as *_base.cpp, *_avx2.cpp or *_avx512.cpp (CMake defines TINYGPT_ISA)"
#endif

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

#define TG_INLINE inline __attribute__((always_inline))

constexpr int kLanes = 16;
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef float f32x16_u __attribute__((vector_size(64), aligned(4), may_alias));
typedef uint16_t u16x16_u __attribute__((vector_size(32), aligned(2), may_alias));

TG_INLINE f32x16 splat(float x) { return f32x16{} + x; }
TG_INLINE f32x16 load(const float* p) {
  f32x16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
TG_INLINE void store(float* p, f32x16 v) { __builtin_memcpy(p, &v, sizeof v); }

// Lane-wise (a < b ? x : y). GCC turns comparisons of vectors wider than the hardware's into
// scalar code, so without AVX-512 they are done on native-width pieces.
#if defined(__AVX512F__)
TG_INLINE f32x16 select_lt(f32x16 a, f32x16 b, f32x16 x, f32x16 y) { return a < b ? x : y; }
#else
#if defined(__AVX__)
typedef float f32xw __attribute__((vector_size(32)));
#else
typedef float f32xw __attribute__((vector_size(16)));
#endif
TG_INLINE f32x16 select_lt(f32x16 a, f32x16 b, f32x16 x, f32x16 y) {
  constexpr int n = 64 / sizeof(f32xw);
  f32xw pa[n], pb[n], px[n], py[n];
  __builtin_memcpy(pa, &a, 64);
  __builtin_memcpy(pb, &b, 64);
  __builtin_memcpy(px, &x, 64);
  __builtin_memcpy(py, &y, 64);
  for (int i = 0; i < n; ++i) px[i] = pa[i] < pb[i] ? px[i] : py[i];
  __builtin_memcpy(&x, px, 64);
  return x;
}
#endif
TG_INLINE f32x16 vmax(f32x16 a, f32x16 b) { return select_lt(a, b, b, a); }
TG_INLINE f32x16 vmin(f32x16 a, f32x16 b) { return select_lt(a, b, a, b); }

// The first n (< 16) lanes from p, the rest 0; and the matching partial store.
TG_INLINE f32x16 load_n(const float* p, int n) {
  f32x16 v = {};
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}
TG_INLINE void store_n(float* p, f32x16 v, int n) {
  for (int i = 0; i < n; ++i) p[i] = v[i];
}

TG_INLINE float hsum(f32x16 v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}
TG_INLINE float hmax(f32x16 v) {
  float m = v[0];
  for (int i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// exp(x) to about 2 ulp (Cephes' polynomial), exactly 0 below -87.3 (so exp(-inf) = 0), inf above 88.7,
// NaN for NaN.
TG_INLINE f32x16 vexp(f32x16 x) {
  const f32x16 lo = splat(-87.3f), hi = splat(88.3f);
  const f32x16 orig = x;
  x = vmin(vmax(x, lo), hi);
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
  f32x16 y = p * __builtin_bit_cast(f32x16, e);
  y += orig - orig;                                              // NaN stays NaN (and +-inf, fixed below)
  y = select_lt(orig, lo, splat(0.f), y);                        // underflow, -inf
  return select_lt(splat(88.7f), orig, splat(__builtin_inff()), y);  // overflow, +inf
}

TG_INLINE float sexp(float x) {  // the same, one value
  f32x16 v = vexp(splat(x));
  return v[0];
}

// bfloat16 <-> float: bf16 is the high half of a float; rounding to nearest even, NaN kept NaN.
TG_INLINE f32x16 load_bf16(const uint16_t* p) {
  const u32x16 w = __builtin_convertvector(*reinterpret_cast<const u16x16_u*>(p), u32x16) << 16;
  return __builtin_bit_cast(f32x16, w);
}
TG_INLINE f32x16 load_bf16_n(const uint16_t* p, int n) {
  f32x16 v = {};
  for (int i = 0; i < n; ++i) v[i] = __builtin_bit_cast(float, static_cast<uint32_t>(p[i]) << 16);
  return v;
}
TG_INLINE u16x16 to_bf16(f32x16 v) {
  const u32x16 w = __builtin_bit_cast(u32x16, v);
  u32x16 r = (w + 0x7FFFu + ((w >> 16) & 1u)) >> 16;
  // NaN stays NaN (the rounding above could carry it into inf): neither below +inf nor above -inf
  const f32x16 inf = splat(__builtin_inff()), rf = __builtin_bit_cast(f32x16, r);
  const f32x16 nan = __builtin_bit_cast(f32x16, u32x16{} + 0x7FC0u);
  r = __builtin_bit_cast(u32x16, select_lt(v, inf, rf, select_lt(-inf, v, rf, nan)));
  return __builtin_convertvector(r, u16x16);
}
TG_INLINE void store_bf16(uint16_t* p, f32x16 v) { *reinterpret_cast<u16x16_u*>(p) = to_bf16(v); }
TG_INLINE void store_bf16_n(uint16_t* p, f32x16 v, int n) {
  u16x16 h = to_bf16(v);
  for (int i = 0; i < n; ++i) p[i] = h[i];
}

// The same loads and stores for either element type (float or bf16 bits), for kernels written
// once for both.
TG_INLINE f32x16 ld(const float* p) { return load(p); }
TG_INLINE f32x16 ld(const uint16_t* p) { return load_bf16(p); }
TG_INLINE f32x16 ld_n(const float* p, int n) { return load_n(p, n); }
TG_INLINE f32x16 ld_n(const uint16_t* p, int n) { return load_bf16_n(p, n); }
TG_INLINE void st(float* p, f32x16 v) { store(p, v); }
TG_INLINE void st(uint16_t* p, f32x16 v) { store_bf16(p, v); }
TG_INLINE void st_n(float* p, f32x16 v, int n) { store_n(p, v, n); }
TG_INLINE void st_n(uint16_t* p, f32x16 v, int n) { store_bf16_n(p, v, n); }

}  // namespace
}  // namespace TINYGPT_ISA
}  // namespace tinygpt
