// Launchers of the rotary-embedding CUDA kernels (cuda.cu); pointers are device pointers, x and y
// (B, T, H, D) contiguous in `dt`, cos and sin (>= T, D/2) fp32 contiguous, stream a cudaStream_t.
// Each returns nullptr or the CUDA error's text.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {
// inverse: turn by the negative angle (the backward, dy -> dx).
const char* rope_launch(DType dt, const void* x, const float* cos, const float* sin, void* y, int64_t B, int64_t T,
                        int64_t H, int64_t D, bool inverse, void* stream);
}  // namespace tinygpt::cuda
