// Launchers of the cross-entropy CUDA kernels (cuda.cu); pointers are device pointers, logits
// (N, V) contiguous in `dt`, targets (N,) int64 (each ignore_index or in [0, V): checked by the
// caller), stream a cudaStream_t. Each returns nullptr or the CUDA error's text.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {
// Per row: lse (fp32) and the row's NLL lse - x[target] (fp64); both 0 for ignored rows. The mean
// over the rows is the caller's (a deterministic torch sum).
const char* cross_entropy_forward(DType dt, const void* logits, const int64_t* targets, float* lse, double* row_loss,
                                  int64_t N, int64_t V, int64_t ignore_index, void* stream);
// grad = (softmax(x) - onehot(target)) * (*scale) in logits' dtype; 0 on ignored rows. `scale` is
// a device fp32 scalar (grad_loss / the number of counted targets), read without a host sync.
const char* cross_entropy_backward(DType dt, const void* logits, const int64_t* targets, const float* lse,
                                   const float* scale, void* grad, int64_t N, int64_t V, int64_t ignore_index,
                                   void* stream);
}  // namespace tinygpt::cuda
