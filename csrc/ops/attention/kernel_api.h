// The attention kernels of every ISA build (see kernel.h).
#pragma once

#include <cstdint>

#include "ops/attention/shape.h"
#include "common/cpu_isa.h"

namespace tinygpt {
TINYGPT_DECLARE_ISA(void attn_fwd_task(const AttnShape& s, const void* q, const void* k, const void* v, void* out,
                                       float* lse, int64_t b, int64_t h, float* scratch))
TINYGPT_DECLARE_ISA(void attn_bwd_task(const AttnShape& s, const void* q, const void* k, const void* v,
                                       const void* out, const void* dout, const float* lse, void* dq, void* dk,
                                       void* dv, int64_t b, int64_t hk, float* scratch))
}  // namespace tinygpt
