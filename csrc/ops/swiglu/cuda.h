// Launchers of the SwiGLU CUDA kernels (cuda.cu); pointers are device pointers to n contiguous
// elements of `dt`, stream a cudaStream_t. Each returns nullptr or the CUDA error's text.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {
// y = silu(a) * b
const char* swiglu_forward(DType dt, const void* a, const void* b, void* y, int64_t n, void* stream);
// da = dy * b * sig(a) * (1 + a * (1 - sig(a))),  db = dy * silu(a)
const char* swiglu_backward(DType dt, const void* dy, const void* a, const void* b, void* da, void* db, int64_t n,
                            void* stream);
}  // namespace tinygpt::cuda
