// The rotary-embedding kernels (rope/kernel.h), declared for every instruction set; pick one
// with TINYGPT_DISPATCH(fn).
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {
TINYGPT_DECLARE_ISA(void rope_rows_f32(const float* x, const float* cos, const float* sin, float* y,
                                       int64_t row_begin, int64_t row_end, int64_t T, int64_t H, int64_t D,
                                       bool inverse))
TINYGPT_DECLARE_ISA(void rope_rows_bf16(const uint16_t* x, const float* cos, const float* sin, uint16_t* y,
                                        int64_t row_begin, int64_t row_end, int64_t T, int64_t H,
                                        int64_t D, bool inverse))
}  // namespace tinygpt
