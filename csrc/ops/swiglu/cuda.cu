// SwiGLU on the GPU, fp32 math for fp32/bf16/fp16 (semantics: tinygpt/ops/reference.py):
//   y = silu(a) * b = a * sig(a) * b,   sig(a) = 1 / (1 + exp(-a))
//   da = dy * b * sig(a) * (1 + a * (1 - sig(a))),   db = dy * a * sig(a)
// Elementwise with a grid-stride loop over 16-byte packs (4 fp32 or 8 16-bit values) when every
// pointer is 16-byte aligned; the last n % pack elements (or all of them, unaligned) one by one.
#include "common/cuda_compat.h"
#include "ops/swiglu/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

// Calls f(i) for element i of the n / N packs' elements, then for the tail elements.
template <int N, class F>
__device__ __forceinline__ void for_each_pack(int64_t n, const F& f) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / N;
  for (int64_t p = tid; p < packs; p += stride) f(p, true);
  for (int64_t i = packs * N + tid; i < n; i += stride) f(i, false);
}

template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    swiglu_fwd_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n) {
  for_each_pack<N>(n, [&](int64_t p, bool whole) {
    if (whole) {
      const Pack<T, N> av = reinterpret_cast<const Pack<T, N>*>(a)[p];
      const Pack<T, N> bv = reinterpret_cast<const Pack<T, N>*>(b)[p];
      Pack<T, N> o;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        const float x = tg_load(&av.v[k]);
        tg_store(&o.v[k], x * sigmoid(x) * tg_load(&bv.v[k]));
      }
      reinterpret_cast<Pack<T, N>*>(y)[p] = o;
    } else {
      const float x = tg_load(a + p);
      tg_store(y + p, x * sigmoid(x) * tg_load(b + p));
    }
  });
}

__device__ __forceinline__ void swiglu_grad(float g, float x, float bv, float& da, float& db) {
  const float s = sigmoid(x);
  da = g * bv * s * (1.0f + x * (1.0f - s));
  db = g * x * s;
}

template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    swiglu_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ a, const T* __restrict__ b,
                      T* __restrict__ da, T* __restrict__ db, int64_t n) {
  for_each_pack<N>(n, [&](int64_t p, bool whole) {
    if (whole) {
      const Pack<T, N> gv = reinterpret_cast<const Pack<T, N>*>(dy)[p];
      const Pack<T, N> av = reinterpret_cast<const Pack<T, N>*>(a)[p];
      const Pack<T, N> bv = reinterpret_cast<const Pack<T, N>*>(b)[p];
      Pack<T, N> oa, ob;
#pragma unroll
      for (int k = 0; k < N; ++k) {
        float ga, gb;
        swiglu_grad(tg_load(&gv.v[k]), tg_load(&av.v[k]), tg_load(&bv.v[k]), ga, gb);
        tg_store(&oa.v[k], ga);
        tg_store(&ob.v[k], gb);
      }
      reinterpret_cast<Pack<T, N>*>(da)[p] = oa;
      reinterpret_cast<Pack<T, N>*>(db)[p] = ob;
    } else {
      float ga, gb;
      swiglu_grad(tg_load(dy + p), tg_load(a + p), tg_load(b + p), ga, gb);
      tg_store(da + p, ga);
      tg_store(db + p, gb);
    }
  });
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* swiglu_forward(DType dt, const void* a, const void* b, void* y, int64_t n, void* stream) {
  if (n == 0) return nullptr;
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using E = std::remove_pointer_t<decltype(tag)>;
    constexpr int kVec = 16 / sizeof(E);
    if (aligned16(a) && aligned16(b) && aligned16(y)) {
      auto k = swiglu_fwd_kernel<E, kVec>;
      TG_LAUNCH(k, tg_grid_for(n / kVec, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(a), static_cast<const E*>(b), static_cast<E*>(y), n);
    } else {
      auto k = swiglu_fwd_kernel<E, 1>;
      TG_LAUNCH(k, tg_grid_for(n, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(a), static_cast<const E*>(b), static_cast<E*>(y), n);
    }
    return tg_launch_error();
  });
}

const char* swiglu_backward(DType dt, const void* dy, const void* a, const void* b, void* da, void* db, int64_t n,
                            void* stream) {
  if (n == 0) return nullptr;
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using E = std::remove_pointer_t<decltype(tag)>;
    constexpr int kVec = 16 / sizeof(E);
    if (aligned16(dy) && aligned16(a) && aligned16(b) && aligned16(da) && aligned16(db)) {
      auto k = swiglu_bwd_kernel<E, kVec>;
      TG_LAUNCH(k, tg_grid_for(n / kVec, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(dy), static_cast<const E*>(a), static_cast<const E*>(b), static_cast<E*>(da),
       static_cast<E*>(db), n);
    } else {
      auto k = swiglu_bwd_kernel<E, 1>;
      TG_LAUNCH(k, tg_grid_for(n, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(dy), static_cast<const E*>(a), static_cast<const E*>(b), static_cast<E*>(da),
       static_cast<E*>(db), n);
    }
    return tg_launch_error();
  });
}

}  // namespace tinygpt::cuda
