// A CPU emulation of the CUDA features tinygpt's kernels use, so that the same kernel source
// (csrc/ops/<kernel>/cuda.cu) compiles as C++ and runs in tests on machines without a GPU.
//
// Each block runs on one OS thread; each CUDA thread of the block is a fiber (ucontext) that runs
// until it reaches a barrier. Between barriers the fibers run one after another in a shuffled
// order, so a missing __syncthreads tends to change results instead of hiding. Covered: grid and
// block indices, static and dynamic shared memory, __syncthreads, __syncwarp, warp shuffles and
// votes (full mask only), atomics, bf16/fp16 types with explicit conversions, the math the
// kernels call, and WMMA 16x16x16 fragments with an emulation-private, scrambled element layout.
// Anything else does not compile, and misuse (divergent barriers, partial warps in warp ops,
// misaligned WMMA pointers, too much shared memory, writes outside the dynamic shared memory,
// bad launch shapes) fails the launch with an exception naming the problem.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- language keywords --------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __constant__ static const
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define __CUDACC_EMU__ 1

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorLaunchFailure = 719,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97, cudaDevAttrMultiProcessorCount = 16 };
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };

namespace tinygpt::emu {

constexpr int kWarp = 32;
constexpr size_t kDefaultSmem = 48 * 1024;   // without cudaFuncSetAttribute
constexpr size_t kMaxSmemOptin = 227 * 1024;  // sm_90 (sm_80 allows 163 KB)
constexpr int kEmuSMs = 3;                     // few, so persistent-grid loops run several rounds

// What the running fiber sees as threadIdx/blockIdx/...; set by the scheduler.
struct ThreadCtx {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
extern thread_local ThreadCtx* tl_ctx;

[[noreturn]] void fail(const std::string& msg);  // from a fiber: fails the launch
void block_barrier();                             // __syncthreads
// A warp-collective point: every lane of the warp deposits `value`, waits for all 32, and gets
// the 32 deposits (lane order). `kind` names the operation for mismatch checks.
const uint64_t* warp_exchange(const char* kind, uint64_t value);
int lane_id();
void* dynamic_smem();
// Per-warp scratch for WMMA: 3 tiles of 256 floats.
float* warp_scratch();

// Runs `body` as every thread of every block of the grid (blocks in a shuffled order).
void run_grid(dim3 grid, dim3 block, size_t smem, const void* func, const std::function<void()>& body);
void set_func_max_smem(const void* func, size_t bytes);

extern thread_local cudaError_t last_error;

template <class... P>
struct Launch {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
    auto k = kernel;
    run_grid(grid, block, smem, reinterpret_cast<const void*>(kernel), [&] {
      auto copy = args;  // each thread gets its own copy of the parameters, as on the GPU
      std::apply(k, copy);
    });
    last_error = cudaSuccess;
  }
};
template <class... P>
Launch<P...> make_launch(void (*k)(P...), dim3 g, dim3 b, size_t smem) {
  return Launch<P...>{k, g, b, smem};
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
inline void check_mask(const char* op, unsigned mask) {
  if (mask != 0xffffffffu) fail(std::string(op) + ": the emulation covers full-warp masks (0xffffffff) only");
}
inline void check_width(const char* op, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fail(std::string(op) + ": width must be a power of two <= 32, got " + std::to_string(width));
}
// Every lane publishes v and reads lane `src`; a source outside the caller's width-segment (or the warp) gives the
// caller's own value, as on the hardware.
template <class T>
T shuffle(const char* op, unsigned mask, T v, int width, int src) {
  check_mask(op, mask);
  check_width(op, width);
  const int lane = lane_id();
  const uint64_t* all = warp_exchange("shfl", to_bits(v));
  const bool in_segment = src >= 0 && src < 32 && (src & ~(width - 1)) == (lane & ~(width - 1));
  return from_bits<T>(all[in_segment ? src : lane]);
}

}  // namespace tinygpt::emu

#define threadIdx (::tinygpt::emu::tl_ctx->thread_idx)
#define blockIdx (::tinygpt::emu::tl_ctx->block_idx)
#define blockDim (::tinygpt::emu::tl_ctx->block_dim)
#define gridDim (::tinygpt::emu::tl_ctx->grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::tinygpt::emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::tinygpt::emu::check_mask("__syncwarp", mask);
  ::tinygpt::emu::warp_exchange("__syncwarp", 0);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
[[noreturn]] inline void __trap() { ::tinygpt::emu::fail("__trap() called"); }

// ---- warp shuffles and votes --------------------------------------------------------------
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int segment_start = ::tinygpt::emu::lane_id() & ~(width - 1);
  return ::tinygpt::emu::shuffle("__shfl_sync", mask, v, width, segment_start + (src & (width - 1)));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::tinygpt::emu::shuffle("__shfl_xor_sync", mask, v, width, ::tinygpt::emu::lane_id() ^ lane_mask);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::tinygpt::emu::shuffle("__shfl_down_sync", mask, v, width,
                                 ::tinygpt::emu::lane_id() + static_cast<int>(delta));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::tinygpt::emu::shuffle("__shfl_up_sync", mask, v, width, ::tinygpt::emu::lane_id() - static_cast<int>(delta));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  using namespace ::tinygpt::emu;
  check_mask("__ballot_sync", mask);
  const uint64_t* all = warp_exchange("vote", pred ? 1 : 0);
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= static_cast<unsigned>(all[i] & 1) << i;
  return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }

// ---- atomics (blocks run on one OS thread, but stay correct if that ever changes) -----------
template <class T>
T __emu_atomic_add(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
inline float atomicAdd(float* p, float v) { return __emu_atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return __emu_atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return __emu_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return __emu_atomic_add(p, v); }
template <class T>
T __emu_atomic_cas(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;
}
inline int atomicCAS(int* p, int c, int v) { return __emu_atomic_cas(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return __emu_atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
  return __emu_atomic_cas(p, c, v);
}
template <class T>
T __emu_atomic_max(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T __emu_atomic_min(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old > v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return __emu_atomic_max(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return __emu_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return __emu_atomic_min(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return __emu_atomic_min(p, v); }
inline int atomicExch(int* p, int v) { return std::atomic_ref<int>(*p).exchange(v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }
inline float atomicExch(float* p, float v) { return std::atomic_ref<float>(*p).exchange(v); }

// ---- bit casts and intrinsics ---------------------------------------------------------------
inline float __int_as_float(int v) { return std::bit_cast<float>(v); }
inline int __float_as_int(float v) { return std::bit_cast<int>(v); }
inline float __uint_as_float(unsigned v) { return std::bit_cast<float>(v); }
inline unsigned __float_as_uint(float v) { return std::bit_cast<unsigned>(v); }
inline double __longlong_as_double(long long v) { return std::bit_cast<double>(v); }
inline long long __double_as_longlong(double v) { return std::bit_cast<long long>(v); }
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __popcll(unsigned long long v) { return std::popcount(v); }
inline int __clz(int v) { return v == 0 ? 32 : std::countl_zero(static_cast<unsigned>(v)); }
inline int __clzll(long long v) { return v == 0 ? 64 : std::countl_zero(static_cast<unsigned long long>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline int __ffsll(long long v) { return __builtin_ffsll(v); }
inline unsigned __brev(unsigned v) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((uint64_t(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
template <class T>
T __ldg(const T* p) {
  return *p;
}

// ---- math (the fast intrinsics are computed exactly here) ----------------------------------
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __saturatef(float x) { return std::fmin(std::fmax(x, 0.0f), 1.0f); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __tanhf(float x) { return std::tanh(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ---- 16-bit floats: storage types with explicit conversions only ---------------------------
struct __nv_bfloat16 {
  uint16_t __x;
};
struct __half {
  uint16_t __x;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
struct __half2 {
  __half x, y;
};
inline float __bfloat162float(__nv_bfloat16 h) { return std::bit_cast<float>(static_cast<uint32_t>(h.__x) << 16); }
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{static_cast<uint16_t>((u >> 16) | 0x40)};  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
float __emu_half_to_float(uint16_t h);
uint16_t __emu_float_to_half(float f);
inline float __half2float(__half h) { return __emu_half_to_float(h.__x); }
inline __half __float2half(float f) { return __half{__emu_float_to_half(f)}; }
inline __half __float2half_rn(float f) { return __float2half(f); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16(a), __float2bfloat16(b)}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__float2half(a), __float2half(b)}; }
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return {__bfloat162float(h.x), __bfloat162float(h.y)}; }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// ---- runtime API ------------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() {
  cudaError_t e = ::tinygpt::emu::last_error;
  ::tinygpt::emu::last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return ::tinygpt::emu::last_error; }
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorInvalidValue ? "invalid argument" : "unspecified launch failure";
}
template <class F>
cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > ::tinygpt::emu::kMaxSmemOptin)
    return cudaErrorInvalidValue;
  ::tinygpt::emu::set_func_max_smem(reinterpret_cast<const void*>(func), static_cast<size_t>(value));
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(::tinygpt::emu::kMaxSmemOptin); break;
    case cudaDevAttrMultiProcessorCount: *v = ::tinygpt::emu::kEmuSMs; break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) {
  if (n) std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t = nullptr) {
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}

// ---- WMMA --------------------------------------------------------------------------------------
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
// Scrambled, use-specific element layouts: lane l's element i is tile position perm[l * 8 + i],
// so a kernel that assumes a hardware layout (or reuses an accumulator as an operand) fails.
const uint16_t* layout(int use);  // 0: a, 1: b, 2: accumulator
template <class T>
inline float to_f(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return __half2float(v);
}
template <class T>
inline T from_f(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16(v);
  else return __float2half(v);
}
void check_ptr(const char* op, const void* p, unsigned ldm, size_t elem);
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation covers 16x16x16 WMMA fragments only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float>
                                                 : (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>),
                "the emulation covers bf16/fp16 operands with fp32 accumulators only");
  static_assert(std::is_same_v<Use, accumulator> == std::is_same_v<Layout, void>,
                "operand fragments need row_major or col_major; accumulators take none");
  static constexpr int num_elements = 8;
  T x[8];
  static constexpr int use = std::is_same_v<Use, matrix_a> ? 0 : std::is_same_v<Use, matrix_b> ? 1 : 2;
};

template <class Use, class T, class L>
void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, T v) {
  for (int i = 0; i < 8; ++i) f.x[i] = v;
}
template <class Use, class T, class L>
void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, float v) requires(!std::is_same_v<T, float>) {
  for (int i = 0; i < 8; ++i) f.x[i] = detail::from_f<T>(v);
}

// Operand load: (row, col) of the 16x16 tile; row_major reads p[row * ldm + col].
template <class Use, class T, class L>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "accumulators are loaded with a layout_t argument");
  detail::check_ptr("load_matrix_sync", p, ldm, sizeof(T));
  const uint16_t* pos = detail::layout(f.use);
  const int lane = ::tinygpt::emu::lane_id();
  for (int i = 0; i < 8; ++i) {
    const int t = pos[lane * 8 + i], r = t / 16, c = t % 16;
    f.x[i] = std::is_same_v<L, row_major> ? p[r * ldm + c] : p[c * ldm + r];
  }
  // Collective, but no memory fence: each lane reads before the lanes meet, so data other lanes
  // wrote without a __syncwarp/__syncthreads first may not be there yet (as on a GPU).
  ::tinygpt::emu::warp_exchange("wmma.load", 0);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  detail::check_ptr("load_matrix_sync", p, ldm, sizeof(float));
  const uint16_t* pos = detail::layout(2);
  const int lane = ::tinygpt::emu::lane_id();
  for (int i = 0; i < 8; ++i) {
    const int t = pos[lane * 8 + i], r = t / 16, c = t % 16;
    f.x[i] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
  }
  ::tinygpt::emu::warp_exchange("wmma.load", 0);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  detail::check_ptr("store_matrix_sync", p, ldm, sizeof(float));
  // The lanes meet first, then each writes its own elements: another lane may read them only
  // after a __syncwarp/__syncthreads (as on a GPU).
  ::tinygpt::emu::warp_exchange("wmma.store", 0);
  const uint16_t* pos = detail::layout(2);
  const int lane = ::tinygpt::emu::lane_id();
  for (int i = 0; i < 8; ++i) {
    const int t = pos[lane * 8 + i], r = t / 16, c = t % 16;
    (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[i];
  }
}
// d = a * b + c, accumulated in fp32. Warp-collective: the lanes pool their operand elements.
template <class T, class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float* s = ::tinygpt::emu::warp_scratch();  // A (256) | B (256)
  const int lane = ::tinygpt::emu::lane_id();
  const uint16_t* pa = detail::layout(0);
  const uint16_t* pb = detail::layout(1);
  const uint16_t* pc = detail::layout(2);
  for (int i = 0; i < 8; ++i) {
    s[pa[lane * 8 + i]] = detail::to_f(a.x[i]);
    s[256 + pb[lane * 8 + i]] = detail::to_f(b.x[i]);
  }
  ::tinygpt::emu::warp_exchange("wmma.mma", 0);
  float out[8];
  for (int i = 0; i < 8; ++i) {
    const int t = pc[lane * 8 + i], r = t / 16, col = t % 16;
    float acc = 0.0f;
    for (int k = 0; k < 16; ++k) acc += s[r * 16 + k] * s[256 + k * 16 + col];
    out[i] = acc + c.x[i];
  }
  ::tinygpt::emu::warp_exchange("wmma.mma", 0);  // scratch is free again
  for (int i = 0; i < 8; ++i) d.x[i] = out[i];
}
}  // namespace nvcuda::wmma

// ---- the launch syntax -----------------------------------------------------------------------
#define TG_LAUNCH(kernel, grid, block, smem, stream) ::tinygpt::emu::make_launch(kernel, grid, block, smem)
