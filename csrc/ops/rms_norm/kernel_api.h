// The RMSNorm kernels (rms_norm/kernel.h), declared for every instruction set; pick one with
// TINYGPT_DISPATCH(fn).
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {
TINYGPT_DECLARE_ISA(void rms_norm_fwd_f32(const float* x, const float* w, float* y, float* rstd,
                                          int64_t rows, int64_t C, float eps))
TINYGPT_DECLARE_ISA(void rms_norm_fwd_bf16(const uint16_t* x, const float* w, uint16_t* y,
                                           float* rstd, int64_t rows, int64_t C, float eps))
TINYGPT_DECLARE_ISA(void rms_norm_bwd_f32(const float* dy, const float* x, const float* w,
                                          const float* rstd, float* dx, float* dw, int64_t rows,
                                          int64_t C))
TINYGPT_DECLARE_ISA(void rms_norm_bwd_bf16(const uint16_t* dy, const uint16_t* x, const float* w,
                                           const float* rstd, uint16_t* dx, float* dw, int64_t rows,
                                           int64_t C))
}  // namespace tinygpt
