// Launcher of the single-query decode attention CUDA kernel (cuda.cu); pointers are device
// pointers, all contiguous, stream a cudaStream_t. Returns nullptr or the CUDA error's text.
//   qkv (B, (H + 2 Hkv) D) of dtype dt; k_cache, v_cache (B, Hkv, Smax, D) of dtype dt, updated
//   in place at positions[b]; positions (B,) int64 read on the device; cos, sin (>= Smax, D/2)
//   float32; out (B, H D) of dtype dt. D even, <= 256.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {
constexpr int64_t kDecodeMaxHeadDim = 256;
const char* decode_attention_forward(DType dt, const void* qkv, void* k_cache, void* v_cache, const int64_t* positions,
                                     const float* cos, const float* sin, void* out, int64_t B, int64_t H,
                                     int64_t Hkv, int64_t Smax, int64_t D, float scale, void* stream);
}  // namespace tinygpt::cuda
