// Rotary embedding on the GPU, half-split layout (semantics: tinygpt/ops/reference.py, rope/kernel.h):
// for x (B, T, H, D) and cos, sin (>= T, D/2) fp32, with x1 = x[..., i], x2 = x[..., i + D/2],
//   y[..., i] = x1 * c - x2 * s,   y[..., i + D/2] = x1 * s + x2 * c,   (c, s) = table row t, column i.
// The backward is the same turn by the negative angle (s -> -s). fp32 math for fp32/bf16/fp16.
// Elementwise over the pairs with a grid-stride loop; when D/2 is a multiple of the vector width
// and the pointers are 16-byte aligned, each step moves 16 bytes of x1, x2, y1 and y2 (4 fp32 or
// 8 16-bit pairs), else one pair.
#include "common/cuda_compat.h"
#include "ops/rope/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kThreads = 256;

// Pairs [p * N, p * N + N) of the B*T*H*(D/2) pairs; N divides D/2.
template <class T, int N>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(const T* __restrict__ x, const float* __restrict__ cos, const float* __restrict__ sin,
                T* __restrict__ y, int64_t packs, int64_t T_, int64_t H, int64_t half, float sign) {
  const int64_t half_packs = half / N;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < packs;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = (p % half_packs) * N;  // first column of the pack within the half
    const int64_t head = p / half_packs;     // (b * T + t) * H + h
    const int64_t t = (head / H) % T_;
    const T* xh = x + head * 2 * half;
    T* yh = y + head * 2 * half;
    const Pack<T, N> a = *reinterpret_cast<const Pack<T, N>*>(xh + i);
    const Pack<T, N> b = *reinterpret_cast<const Pack<T, N>*>(xh + half + i);
    const Pack<float, N> c = *reinterpret_cast<const Pack<float, N>*>(cos + t * half + i);
    const Pack<float, N> s = *reinterpret_cast<const Pack<float, N>*>(sin + t * half + i);
    Pack<T, N> o1, o2;
#pragma unroll
    for (int k = 0; k < N; ++k) {
      const float x1 = tg_load(&a.v[k]), x2 = tg_load(&b.v[k]), cv = c.v[k], sv = s.v[k] * sign;
      tg_store(&o1.v[k], x1 * cv - x2 * sv);
      tg_store(&o2.v[k], x1 * sv + x2 * cv);
    }
    *reinterpret_cast<Pack<T, N>*>(yh + i) = o1;
    *reinterpret_cast<Pack<T, N>*>(yh + half + i) = o2;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* rope_launch(DType dt, const void* x, const float* cos, const float* sin, void* y, int64_t B, int64_t T,
                        int64_t H, int64_t D, bool inverse, void* stream) {
  const int64_t half = D / 2, pairs = B * T * H * half;
  if (pairs == 0) return nullptr;
  const float sign = inverse ? -1.0f : 1.0f;
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using E = std::remove_pointer_t<decltype(tag)>;
    constexpr int kVec = 16 / sizeof(E);
    const bool vec = half % kVec == 0 && aligned16(x) && aligned16(y) && aligned16(cos) && aligned16(sin);
    if (vec) {
      auto k = rope_kernel<E, kVec>;
      const int64_t packs = pairs / kVec;
      TG_LAUNCH(k, tg_grid_for(packs, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(x), cos, sin, static_cast<E*>(y), packs, T, H, half, sign);
    } else {
      auto k = rope_kernel<E, 1>;
      TG_LAUNCH(k, tg_grid_for(pairs, kThreads), kThreads, 0, stream)
      (static_cast<const E*>(x), cos, sin, static_cast<E*>(y), pairs, T, H, half, sign);
    }
    return tg_launch_error();
  });
}

}  // namespace tinygpt::cuda
