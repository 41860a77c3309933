// Launchers of the RMSNorm CUDA kernels (cuda.cu); pointers are device pointers, rows x C
// contiguous, w is fp32, stream a cudaStream_t. Each returns nullptr or the CUDA error's text.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {
const char* rms_norm_forward(DType dt, const void* x, const float* w, void* y, float* rstd, int64_t rows,
                             int64_t C, float eps, void* stream);
// dw_partial: rms_norm_dw_blocks(rows) x C fp32 sums, one row per block (summed by the caller).
const char* rms_norm_backward(DType dt, const void* dy, const void* x, const float* w, const float* rstd,
                              void* dx, float* dw_partial, int64_t rows, int64_t C, void* stream);
int64_t rms_norm_dw_blocks(int64_t rows);
}  // namespace tinygpt::cuda
