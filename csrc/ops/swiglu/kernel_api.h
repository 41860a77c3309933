// The SwiGLU kernels (swiglu/kernel.h), declared for every instruction set; pick one with
// TINYGPT_DISPATCH(fn).
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {
TINYGPT_DECLARE_ISA(void swiglu_fwd_f32(const float* a, const float* b, float* y, int64_t n))
TINYGPT_DECLARE_ISA(void swiglu_fwd_bf16(const uint16_t* a, const uint16_t* b, uint16_t* y, int64_t n))
TINYGPT_DECLARE_ISA(void swiglu_bwd_f32(const float* dy, const float* a, const float* b, float* da,
                                        float* db, int64_t n))
TINYGPT_DECLARE_ISA(void swiglu_bwd_bf16(const uint16_t* dy, const uint16_t* a, const uint16_t* b,
                                         uint16_t* da, uint16_t* db, int64_t n))
}  // namespace tinygpt
