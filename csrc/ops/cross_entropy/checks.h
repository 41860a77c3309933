// Input checks of tinygpt::cross_entropy(_backward) shared by the CPU and CUDA glue (each checks
// the devices itself).
#pragma once

#include <ATen/core/Tensor.h>

namespace tinygpt {

inline void check_logits_targets_shapes(const char* op, const at::Tensor& logits, const at::Tensor& targets,
                                        bool allow_f16) {
  const bool ok = logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16 ||
                  (allow_f16 && logits.scalar_type() == at::kHalf);
  TORCH_CHECK_TYPE(ok, op, ": logits must be float32", allow_f16 ? ", bfloat16 or float16" : " or bfloat16",
                   ", got ", logits.scalar_type());
  TORCH_CHECK_TYPE(targets.scalar_type() == at::kLong, op, ": targets must be int64 class indices, got ",
                   targets.scalar_type());
  TORCH_CHECK_VALUE(logits.dim() == 2, op, ": logits must be 2-D (N, V), got shape ", logits.sizes());
  TORCH_CHECK_VALUE(logits.size(1) >= 1, op, ": logits need at least one class (V >= 1), got shape ",
                    logits.sizes());
  TORCH_CHECK_VALUE(targets.dim() == 1 && targets.size(0) == logits.size(0), op,
                    ": targets must have shape (N,) with N = ", logits.size(0), " (the rows of logits ",
                    logits.sizes(), "), got shape ", targets.sizes());
  TORCH_CHECK(logits.is_contiguous(), op, ": logits must be contiguous");
  TORCH_CHECK(targets.is_contiguous(), op, ": targets must be contiguous");
}

}  // namespace tinygpt
