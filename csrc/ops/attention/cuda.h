// Launchers of the fused attention CUDA kernels (cuda.cu). Pointers are device pointers to
// contiguous tensors: q, out, dq, grad_out (B, H, T, D); k, v, dk, dv (B, Hkv, S, D); lse and dsum
// fp32 (B, H, T). D must be 32, 64, 80, 96 or 128; H a multiple of Hkv; causal needs S >= T (query i sees
// keys j <= i + S - T). stream is a cudaStream_t. Each returns nullptr or an error's text.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {

// Whether the kernels support this head dim (32, 64, 80, 96, 128).
bool attention_head_dim_supported(int64_t D);

// out = softmax(scale q k^T [masked]) v; lse = log-sum-exp of each row of scale q k^T (natural log).
const char* attention_forward(DType dt, const void* q, const void* k, const void* v, void* out, float* lse, int64_t B,
                              int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, bool causal, float scale,
                              void* stream);

// dq, dk, dv of the forward above; dsum is (B, H, T) fp32 scratch (rowsum(grad_out * out)).
const char* attention_backward(DType dt, const void* grad_out, const void* q, const void* k, const void* v,
                               const void* out, const float* lse, float* dsum, void* dq, void* dk, void* dv,
                               int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, bool causal,
                               float scale, void* stream);

}  // namespace tinygpt::cuda
