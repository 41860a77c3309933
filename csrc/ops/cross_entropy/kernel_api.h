// The cross-entropy kernels of every ISA build (kernel.h); cpu.cpp picks one with TINYGPT_DISPATCH.
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {

TINYGPT_DECLARE_ISA(void cross_entropy_fwd_f32(const float* logits, const int64_t* targets, int64_t rows,
                                               int64_t V, int64_t ignore_index, float* lse, double* row_loss))
TINYGPT_DECLARE_ISA(void cross_entropy_fwd_bf16(const uint16_t* logits, const int64_t* targets, int64_t rows,
                                                int64_t V, int64_t ignore_index, float* lse, double* row_loss))
TINYGPT_DECLARE_ISA(void cross_entropy_bwd_f32(const float* logits, const int64_t* targets, const float* lse,
                                               int64_t rows, int64_t V, int64_t ignore_index, float scale,
                                               float* grad))
TINYGPT_DECLARE_ISA(void cross_entropy_bwd_bf16(const uint16_t* logits, const int64_t* targets, const float* lse,
                                                int64_t rows, int64_t V, int64_t ignore_index, float scale,
                                                uint16_t* grad))

}  // namespace tinygpt
