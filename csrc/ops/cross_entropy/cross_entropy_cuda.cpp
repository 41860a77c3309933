// torch glue of the cross-entropy CUDA kernels (cross_entropy/cuda.cu); see common/cuda_glue.h.
// Same schemas, checks and results as the CPU op (cross_entropy/cpu.cpp), plus float16 logits:
//   cross_entropy(logits, targets, ignore_index) -> (loss, lse): loss the fp32 mean NLL over the
//   targets that are not ignore_index (NaN when there are none), lse (N,) fp32 (0 on ignored rows);
//   cross_entropy_backward(grad_loss, logits, targets, lse, ignore_index) -> dlogits (logits' dtype).
// The mean is a torch sum of the kernel's per-row fp64 NLLs divided by the count of counted
// targets, both on the device (deterministic, no atomics). Targets out of range are reported as
// the CPU op does (IndexError naming the first bad row): the check is a few torch ops and one
// host sync per call (the .item() of "any bad target"), which a training step can afford; a
// kernel cannot raise without one anyway.
#include <tuple>

#include "common/cuda_glue.h"
#include "ops/cross_entropy/checks.h"
#include "ops/cross_entropy/cuda.h"

namespace tinygpt::cuda {
namespace {

DType check_logits_targets(const char* op, const at::Tensor& logits, const at::Tensor& targets) {
  check_device(op, logits, targets);
  check_logits_targets_shapes(op, logits, targets, true);
  return dtype_of(op, logits);
}

// The number of targets that are not ignore_index, as a device int64 scalar (no sync); raises if
// any other target lies outside [0, V) (one sync).
at::Tensor count_valid(const char* op, const at::Tensor& targets, int64_t V, int64_t ignore_index) {
  const at::Tensor counted = targets.ne(ignore_index);
  const at::Tensor bad = counted.logical_and(targets.lt(0).logical_or(targets.ge(V)));
  if (bad.any().item<bool>()) {
    const int64_t row = bad.nonzero().select(1, 0).min().item<int64_t>();
    const int64_t v = targets[row].item<int64_t>();
    TORCH_CHECK_INDEX(false, op, ": target ", v, " at row ", row, " is out of range [0, ", V,
                      ") and is not ignore_index (", ignore_index, ")");
  }
  return counted.sum();
}

std::tuple<at::Tensor, at::Tensor> ce_fwd(const at::Tensor& logits, const at::Tensor& targets, int64_t ignore_index) {
  constexpr const char* op = "tinygpt::cross_entropy";
  const DType dt = check_logits_targets(op, logits, targets);
  c10::OptionalDeviceGuard guard(logits.device());
  const int64_t N = logits.size(0), V = logits.size(1);
  const at::Tensor valid = count_valid(op, targets, V, ignore_index);
  at::Tensor lse = at::empty({N}, logits.options().dtype(at::kFloat));
  at::Tensor row_loss = at::empty({N}, logits.options().dtype(at::kDouble));
  check_launch(op, cross_entropy_forward(dt, logits.const_data_ptr(), targets.const_data_ptr<int64_t>(),
                                         lse.mutable_data_ptr<float>(), row_loss.mutable_data_ptr<double>(), N, V,
                                         ignore_index, stream_for(logits)));
  // fp64 sum / count: 0 / 0 = NaN when nothing counts (also for N = 0), as the CPU op.
  at::Tensor loss = row_loss.sum().div(valid.to(at::kDouble)).to(at::kFloat);
  return {loss, lse};
}

at::Tensor ce_bwd(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& targets,
                  const at::Tensor& lse, int64_t ignore_index) {
  constexpr const char* op = "tinygpt::cross_entropy_backward";
  const DType dt = check_logits_targets(op, logits, targets);
  check_device(op, logits, grad_loss, lse);
  const int64_t N = logits.size(0), V = logits.size(1);
  TORCH_CHECK_VALUE(grad_loss.numel() == 1, op, ": grad_loss must be a scalar, got shape ", grad_loss.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(grad_loss.scalar_type()), op, ": grad_loss must be floating point, got ",
                   grad_loss.scalar_type());
  TORCH_CHECK_TYPE(lse.scalar_type() == at::kFloat, op, ": lse must be float32, got ", lse.scalar_type());
  TORCH_CHECK_VALUE(lse.dim() == 1 && lse.size(0) == N, op, ": lse must have shape (", N, ",), got ", lse.sizes());
  TORCH_CHECK(lse.is_contiguous(), op, ": lse must be contiguous");
  c10::OptionalDeviceGuard guard(logits.device());
  const at::Tensor valid = count_valid(op, targets, V, ignore_index);
  // grad_loss / count on the device (inf or NaN when nothing counts: then every row is ignored
  // and the kernel writes zeros without reading it).
  const at::Tensor scale = grad_loss.reshape({}).to(at::kDouble).div(valid.to(at::kDouble)).to(at::kFloat);
  at::Tensor grad = at::empty({N, V}, logits.options());
  check_launch(op, cross_entropy_backward(dt, logits.const_data_ptr(), targets.const_data_ptr<int64_t>(),
                                          lse.const_data_ptr<float>(), scale.const_data_ptr<float>(),
                                          grad.mutable_data_ptr(), N, V, ignore_index, stream_for(logits)));
  return grad;
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("cross_entropy", &tinygpt::cuda::ce_fwd);
  m.impl("cross_entropy_backward", &tinygpt::cuda::ce_bwd);
}
