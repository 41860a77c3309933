// Input checks of tinygpt::sample(_probs)'s logits shared by the CPU and CUDA glue (each checks
// the device itself).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace tinygpt {

inline void check_logits_shape(const char* op, const at::Tensor& logits, bool allow_f16) {
  const bool ok = logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16 ||
                  (allow_f16 && logits.scalar_type() == at::kHalf);
  TORCH_CHECK_TYPE(ok, op, ": logits must be float32", allow_f16 ? ", bfloat16 or float16" : " or bfloat16", ", got ",
                   logits.scalar_type());
  TORCH_CHECK_VALUE(logits.dim() == 2, op, ": logits must be 2-D (B, V), got shape ", logits.sizes());
  TORCH_CHECK_VALUE(logits.size(1) >= 1, op, ": empty vocabulary: logits must have V >= 1 columns, got shape ",
                    logits.sizes());
  TORCH_CHECK_VALUE(logits.size(1) < (int64_t{1} << 31), op, ": a vocabulary of ", logits.size(1),
                    " is too large (at most 2^31 - 1)");
  TORCH_CHECK(logits.is_contiguous(), op, ": logits must be contiguous");
}

}  // namespace tinygpt
