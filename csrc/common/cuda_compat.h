// What every csrc/ops/<kernel>/cuda.cu includes first. The same kernel source builds two ways:
//  - with nvcc for the GPU (only CUDA headers: no torch, raw pointers, cudaStream_t);
//  - as C++ against the CPU emulation in csrc/cuda_emu (TINYGPT_CUDA_EMU), which the tests run.
// Rules for kernels, so that both builds agree:
//  - launch with TG_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...), where `kernel` is a
//    plain variable holding the kernel (auto k = my_kernel<T, 64>;), and return tg_launch_error();
//  - dynamic shared memory through tg_dynamic_smem<T>(); raise its limit with
//    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
//  - 16-bit floats only through tg_load/tg_store (or the explicit __float2bfloat16 & co.);
//  - warp operations with the full mask 0xffffffff, in full warps, reached by every lane;
//  - __syncthreads reached by every thread of the block (no early return before one);
//  - WMMA 16x16x16 bf16/fp16 with fp32 accumulators; fragment element layout is opaque (the
//    emulation scrambles it): go through shared memory for anything per element.
#pragma once

#ifdef TINYGPT_CUDA_EMU
#include "cuda_emu/emu.h"
namespace tinygpt::cuda {
template <class T>
inline T* tg_dynamic_smem() {
  return reinterpret_cast<T*>(::tinygpt::emu::dynamic_smem());
}
}  // namespace tinygpt::cuda
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
#define TG_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, static_cast<cudaStream_t>(stream)>>>
namespace tinygpt::cuda {
template <class T>
__device__ inline T* tg_dynamic_smem() {
  extern __shared__ __align__(16) unsigned char tg_smem_bytes[];
  return reinterpret_cast<T*>(tg_smem_bytes);
}
}  // namespace tinygpt::cuda
#endif

#include <cstdint>
#include <type_traits>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {

using bf16 = __nv_bfloat16;
using fp16 = __half;

__device__ __forceinline__ float tg_load(const float* p) { return *p; }
__device__ __forceinline__ float tg_load(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float tg_load(const fp16* p) { return __half2float(*p); }
__device__ __forceinline__ void tg_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void tg_store(bf16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void tg_store(fp16* p, float v) { *p = __float2half(v); }

template <class T>
__device__ __forceinline__ T tg_from_float(float v);
template <>
__device__ __forceinline__ float tg_from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 tg_from_float<bf16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ fp16 tg_from_float<fp16>(float v) { return __float2half(v); }

// N consecutive elements moved as one load/store (up to 16 bytes, aligned to its size).
template <class E, int N>
struct alignas(sizeof(E) * N < 16 ? sizeof(E) * N : 16) Pack {
  E v[N];
};

// Warp-wide sum / max by a butterfly (every lane gets the result).
__device__ __forceinline__ float tg_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float tg_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Blocks for a grid-stride loop over `work` items at `threads` per block: enough to cover the
// work, at most `per_sm` per multiprocessor (more only adds scheduling), at least 1.
inline unsigned tg_grid_for(int64_t work, int threads, int per_sm = 8) {
  int dev = 0, sms = 1;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    sms = 1;
    (void)cudaGetLastError();  // a failed query is not the launch's error
  }
  const int64_t want = (work + threads - 1) / threads;
  const int64_t cap = static_cast<int64_t>(sms) * per_sm;
  return static_cast<unsigned>(want < 1 ? 1 : want < cap ? want : cap);
}

// nullptr when the last launch went well, else the CUDA error's text.
inline const char* tg_launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// Calls fn with a typed null pointer for the dtype, to instantiate one kernel per dtype.
template <class F>
inline const char* tg_dispatch(DType d, F&& fn) {
  switch (d) {
    case DType::f32: return fn(static_cast<float*>(nullptr));
    case DType::bf16: return fn(static_cast<bf16*>(nullptr));
    case DType::f16: return fn(static_cast<fp16*>(nullptr));
  }
  return "unknown dtype";
}

}  // namespace tinygpt::cuda
