// RMSNorm on the GPU, fp32 math for fp32/bf16/fp16 rows (semantics: tinygpt/ops/reference.py):
//   y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
//   dx = rstd * g - x * (rstd^3 / C) * sum(g * x),  g = dy * w;   dw = sum over rows of dy * x * rstd
// One warp per row: tiny models have C <= ~1024, so a row is a few loads per lane and a butterfly.
#include "common/cuda_compat.h"
#include "ops/rms_norm/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kWarps = 4;        // rows per block in the forward
constexpr int kBwdRows = 32;     // rows per block in the backward (one dw partial per block)

template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    rms_norm_fwd_kernel(const T* __restrict__ x, const float* __restrict__ w, T* __restrict__ y,
                        float* __restrict__ rstd, int64_t rows, int64_t C, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together; no block barrier below
  const T* xr = x + row * C;
  float ss = 0.0f;
  for (int64_t i = lane; i < C; i += 32) {
    const float v = tg_load(xr + i);
    ss += v * v;
  }
  ss = tg_warp_sum(ss);
  const float rs = rsqrtf(ss / static_cast<float>(C) + eps);
  if (lane == 0) rstd[row] = rs;
  T* yr = y + row * C;
  for (int64_t i = lane; i < C; i += 32) tg_store(yr + i, tg_load(xr + i) * rs * w[i]);
}

// Block = 4 warps over kBwdRows rows; each thread keeps the dw of its columns in shared memory
// partial sums, written once per block (no atomics: the sum over blocks is deterministic).
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    rms_norm_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ w,
                        const float* __restrict__ rstd, T* __restrict__ dx, float* __restrict__ dw_partial,
                        int64_t rows, int64_t C) {
  float* dw_s = tg_dynamic_smem<float>();  // kWarps x C
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float* my_dw = dw_s + static_cast<int64_t>(warp) * C;
  for (int64_t i = lane; i < C; i += 32) my_dw[i] = 0.0f;
  const float inv_c = 1.0f / static_cast<float>(C);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kBwdRows;
  for (int64_t r = first + warp; r < first + kBwdRows && r < rows; r += kWarps) {
    const T* dyr = dy + r * C;
    const T* xr = x + r * C;
    const float rs = rstd[r];
    float dot = 0.0f;
    for (int64_t i = lane; i < C; i += 32) dot += tg_load(dyr + i) * w[i] * tg_load(xr + i);
    dot = tg_warp_sum(dot);
    const float coef = rs * rs * rs * inv_c * dot;
    T* dxr = dx + r * C;
    for (int64_t i = lane; i < C; i += 32) {
      const float g = tg_load(dyr + i), xv = tg_load(xr + i);
      tg_store(dxr + i, rs * (g * w[i]) - xv * coef);
      my_dw[i] += g * (xv * rs);
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < kWarps; ++k) s += dw_s[k * C + i];
    dw_partial[static_cast<int64_t>(blockIdx.x) * C + i] = s;
  }
}

}  // namespace

int64_t rms_norm_dw_blocks(int64_t rows) { return (rows + kBwdRows - 1) / kBwdRows; }

const char* rms_norm_forward(DType dt, const void* x, const float* w, void* y, float* rstd, int64_t rows,
                             int64_t C, float eps, void* stream) {
  if (rows == 0) return nullptr;
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto k = rms_norm_fwd_kernel<T>;
    const unsigned grid = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
    TG_LAUNCH(k, grid, kWarps * 32, 0, stream)
    (static_cast<const T*>(x), w, static_cast<T*>(y), rstd, rows, C, eps);
    return tg_launch_error();
  });
}

const char* rms_norm_backward(DType dt, const void* dy, const void* x, const float* w, const float* rstd,
                              void* dx, float* dw_partial, int64_t rows, int64_t C, void* stream) {
  if (rows == 0) return nullptr;
  const size_t smem = sizeof(float) * kWarps * static_cast<size_t>(C);
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto k = rms_norm_bwd_kernel<T>;
    if (smem > 48 * 1024) {
      const cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      if (e != cudaSuccess) return "rms_norm backward: the row is too long for shared memory";
    }
    TG_LAUNCH(k, static_cast<unsigned>(rms_norm_dw_blocks(rows)), kWarps * 32, smem, stream)
    (static_cast<const T*>(dy), static_cast<const T*>(x), w, rstd, static_cast<T*>(dx), dw_partial, rows, C);
    return tg_launch_error();
  });
}

}  // namespace tinygpt::cuda
