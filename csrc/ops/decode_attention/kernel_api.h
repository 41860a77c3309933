// The single-query decode attention kernels of every ISA build (kernel.h).
#pragma once

#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {

// One decode step of one sequence and one key/value head (see kernel.h).
struct DecodeShape {
  int64_t H, Hkv, D, Smax;  // query heads, key/value heads, head dim, cache length
  float scale;
  bool bf16;  // qkv, caches and output are bfloat16 (else float32)
};

TINYGPT_DECLARE_ISA(void decode_attn_task(const DecodeShape& s, const void* qkv_row, void* k_head, void* v_head,
                                          int64_t pos, const float* cos_row, const float* sin_row, int64_t hk,
                                          void* out_row, float* scratch))

}  // namespace tinygpt
