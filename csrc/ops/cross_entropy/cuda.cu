// Fused cross-entropy on the GPU, fp32 math for fp32/bf16/fp16 logits (semantics:
// cross_entropy/cpu.cpp and kernel.h; reference: tinygpt/ops/reference.py).
// Forward: one block per row; each thread keeps an online (max m, sum exp(x - m)) over its
// strided share of the row (one pass over the logits), the pairs are merged by warp shuffles and
// then across warps through shared memory. lse = m + log(s); the row's NLL (m - x[t]) + log(s) in
// fp64. A row holding NaN or +inf, or only -inf, gets lse NaN (as torch's log_softmax). Ignored
// rows: lse 0, NLL 0.
// Backward: one block per row, no reduction: g = exp(x - lse) * scale, g[t] -= scale, written in
// the logits' dtype; ignored rows get 0. No atomics anywhere: results do not depend on scheduling.
#include "common/cuda_compat.h"
#include "ops/cross_entropy/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float neg_inf() { return __int_as_float(static_cast<int>(0xff800000u)); }
__device__ __forceinline__ float nan_f() { return __int_as_float(0x7fc00000); }

// Merges (m2, s2) into (m, s): both sums of exp(x - own max).
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  if (M == neg_inf()) {
    s += s2;  // both empty (0) so far
  } else {
    s = s * expf(m - M) + s2 * expf(m2 - M);  // +inf - +inf gives NaN, as it should
  }
  m = M;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    ce_fwd_kernel(const T* __restrict__ logits, const int64_t* __restrict__ targets, float* __restrict__ lse,
                  double* __restrict__ row_loss, int64_t V, int64_t ignore_index) {
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  const int64_t row = blockIdx.x;
  const int64_t t = targets[row];
  if (t == ignore_index) {  // the whole block leaves together, before any barrier
    if (threadIdx.x == 0) {
      lse[row] = 0.0f;
      row_loss[row] = 0.0;
    }
    return;
  }
  const T* x = logits + row * V;
  float m = neg_inf(), s = 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) {
    const float v = tg_load(x + i);
    if (v > m) {
      s = s * expf(m - v) + 1.0f;  // m = -inf: exp(-inf) = 0
      m = v;
    } else if (v != neg_inf()) {
      s += expf(v - m);  // NaN v makes s NaN
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    m = warp_m[0];
    s = warp_s[0];
    for (int w = 1; w < kWarps; ++w) merge(m, s, warp_m[w], warp_s[w]);
    if (m == pos_inf() || m == neg_inf() || s != s) {
      lse[row] = nan_f();
      row_loss[row] = __longlong_as_double(0x7ff8000000000000LL);
    } else {
      const double log_s = log(static_cast<double>(s));
      lse[row] = static_cast<float>(static_cast<double>(m) + log_s);
      row_loss[row] = (static_cast<double>(m) - static_cast<double>(tg_load(x + t))) + log_s;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    ce_bwd_kernel(const T* __restrict__ logits, const int64_t* __restrict__ targets, const float* __restrict__ lse,
                  const float* __restrict__ scale_p, T* __restrict__ grad, int64_t V, int64_t ignore_index) {
  const int64_t row = blockIdx.x;
  const int64_t t = targets[row];
  T* g = grad + row * V;
  if (t == ignore_index) {
    for (int64_t i = threadIdx.x; i < V; i += kThreads) tg_store(g + i, 0.0f);
    return;
  }
  const T* x = logits + row * V;
  const float l = lse[row], scale = *scale_p;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) {
    const float p = expf(tg_load(x + i) - l);
    tg_store(g + i, (i == t ? p - 1.0f : p) * scale);
  }
}

}  // namespace

const char* cross_entropy_forward(DType dt, const void* logits, const int64_t* targets, float* lse, double* row_loss,
                                  int64_t N, int64_t V, int64_t ignore_index, void* stream) {
  if (N == 0) return nullptr;
  if (N > 0x7fffffff) return "cross_entropy: too many rows for one grid";
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using E = std::remove_pointer_t<decltype(tag)>;
    auto k = ce_fwd_kernel<E>;
    TG_LAUNCH(k, static_cast<unsigned>(N), kThreads, 0, stream)
    (static_cast<const E*>(logits), targets, lse, row_loss, V, ignore_index);
    return tg_launch_error();
  });
}

const char* cross_entropy_backward(DType dt, const void* logits, const int64_t* targets, const float* lse,
                                   const float* scale, void* grad, int64_t N, int64_t V, int64_t ignore_index,
                                   void* stream) {
  if (N == 0) return nullptr;
  if (N > 0x7fffffff) return "cross_entropy_backward: too many rows for one grid";
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using E = std::remove_pointer_t<decltype(tag)>;
    auto k = ce_bwd_kernel<E>;
    TG_LAUNCH(k, static_cast<unsigned>(N), kThreads, 0, stream)
    (static_cast<const E*>(logits), targets, lse, scale, static_cast<E*>(grad), V, ignore_index);
    return tg_launch_error();
  });
}

}  // namespace tinygpt::cuda
