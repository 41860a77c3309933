// torch glue for the fused cross-entropy (kernels in kernel.h, one build per ISA):
//   tinygpt::cross_entropy(logits, targets, ignore_index) -> (loss, lse)
//   tinygpt::cross_entropy_backward(grad_loss, logits, targets, lse, ignore_index) -> grad_logits
// logits (N, V) float32 or bfloat16, targets (N,) int64; loss is the fp32 mean NLL over the targets
// that are not ignore_index (NaN when there are none), lse (N,) fp32 the log-sum-exp of each row
// (0 for ignored rows), saved for the backward.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "common/cpu_isa.h"
#include "ops/cross_entropy/checks.h"
#include "ops/cross_entropy/kernel_api.h"

namespace tinygpt {
namespace {

void check_logits_targets(const char* op, const at::Tensor& logits, const at::Tensor& targets) {
  TORCH_CHECK(logits.device().is_cpu(), op, ": logits must be a CPU tensor, got one on ", logits.device());
  TORCH_CHECK(targets.device().is_cpu(), op, ": targets must be a CPU tensor, got one on ", targets.device());
  check_logits_targets_shapes(op, logits, targets, false);
}

// The number of targets that are not ignore_index; any other target must lie in [0, V).
int64_t count_valid(const char* op, const at::Tensor& targets, int64_t V, int64_t ignore_index) {
  const int64_t* t = targets.data_ptr<int64_t>();
  const int64_t n = targets.numel();
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = t[i];
    if (v == ignore_index) continue;
    TORCH_CHECK_INDEX(v >= 0 && v < V, op, ": target ", v, " at row ", i, " is out of range [0, ", V,
                      ") and is not ignore_index (", ignore_index, ")");
    ++valid;
  }
  return valid;
}

// The gradient is as large as the logits (hundreds of MB at a real vocabulary) and freshly
// allocated each step, so first-touch page faults cost more than the kernel itself. Ask Linux for
// transparent huge pages on it (one fault per 2 MiB instead of per 4 KiB; the usual THP mode
// "madvise" gives them only when asked, as torch does with THP_MEM_ALLOC_ENABLE=1). Advice only:
// the 2 MiB-aligned part of the buffer, and a failure changes nothing.
void advise_huge_pages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (bytes < (size_t{32} << 20)) return;  // glibc serves these from their own mmap
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (e > b) (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Rows per task: enough work (about 32K logits) to be worth a thread.
int64_t grain(int64_t V) { return std::max<int64_t>(1, (int64_t{1} << 15) / V); }

std::tuple<at::Tensor, at::Tensor> cross_entropy_cpu(const at::Tensor& logits, const at::Tensor& targets,
                                                     int64_t ignore_index) {
  constexpr const char* op = "tinygpt::cross_entropy";
  check_logits_targets(op, logits, targets);
  const int64_t N = logits.size(0), V = logits.size(1);
  const int64_t valid = count_valid(op, targets, V, ignore_index);

  const auto fopts = logits.options().dtype(at::kFloat);
  at::Tensor loss = at::empty({}, fopts);
  at::Tensor lse = at::empty({N}, fopts);
  std::vector<double> row_loss(static_cast<size_t>(N));
  const int64_t* t = targets.data_ptr<int64_t>();
  float* lse_p = lse.data_ptr<float>();
  double* rl = row_loss.data();
  if (logits.scalar_type() == at::kFloat) {
    const float* x = logits.data_ptr<float>();
    at::parallel_for(0, N, grain(V), [&](int64_t b, int64_t e) {
      TINYGPT_DISPATCH(cross_entropy_fwd_f32)(x + b * V, t + b, e - b, V, ignore_index, lse_p + b, rl + b);
    });
  } else {
    const auto* x = reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>());
    at::parallel_for(0, N, grain(V), [&](int64_t b, int64_t e) {
      TINYGPT_DISPATCH(cross_entropy_fwd_bf16)(x + b * V, t + b, e - b, V, ignore_index, lse_p + b, rl + b);
    });
  }
  // The mean in fp64, in row order: the same result for any number of threads.
  double sum = 0.0;
  for (int64_t i = 0; i < N; ++i) sum += rl[i];
  *loss.data_ptr<float>() =
      valid == 0 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(sum / static_cast<double>(valid));
  return {loss, lse};
}

at::Tensor cross_entropy_backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                                      const at::Tensor& targets, const at::Tensor& lse, int64_t ignore_index) {
  constexpr const char* op = "tinygpt::cross_entropy_backward";
  check_logits_targets(op, logits, targets);
  const int64_t N = logits.size(0), V = logits.size(1);
  TORCH_CHECK(grad_loss.device().is_cpu() && lse.device().is_cpu(), op,
              ": grad_loss and lse must be CPU tensors, got ones on ", grad_loss.device(), " and ", lse.device());
  TORCH_CHECK_VALUE(grad_loss.numel() == 1, op, ": grad_loss must be a scalar, got shape ", grad_loss.sizes());
  TORCH_CHECK_TYPE(at::isFloatingType(grad_loss.scalar_type()), op, ": grad_loss must be floating point, got ",
                   grad_loss.scalar_type());
  TORCH_CHECK_TYPE(lse.scalar_type() == at::kFloat, op, ": lse must be float32, got ", lse.scalar_type());
  TORCH_CHECK_VALUE(lse.dim() == 1 && lse.size(0) == N, op, ": lse must have shape (", N, ",), got ",
                    lse.sizes());
  TORCH_CHECK(lse.is_contiguous(), op, ": lse must be contiguous");
  const int64_t valid = count_valid(op, targets, V, ignore_index);

  at::Tensor grad = at::empty({N, V}, logits.options());
  advise_huge_pages(grad.data_ptr(), grad.nbytes());
  // The scale is unused when no target counts (every row is then ignored and gets 0).
  const float scale =
      valid == 0 ? 0.f : static_cast<float>(grad_loss.item<double>() / static_cast<double>(valid));
  const int64_t* t = targets.data_ptr<int64_t>();
  const float* l = lse.data_ptr<float>();
  if (logits.scalar_type() == at::kFloat) {
    const float* x = logits.data_ptr<float>();
    float* g = grad.data_ptr<float>();
    at::parallel_for(0, N, grain(V), [&](int64_t b, int64_t e) {
      TINYGPT_DISPATCH(cross_entropy_bwd_f32)(x + b * V, t + b, l + b, e - b, V, ignore_index, scale, g + b * V);
    });
  } else {
    const auto* x = reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>());
    auto* g = reinterpret_cast<uint16_t*>(grad.data_ptr<at::BFloat16>());
    at::parallel_for(0, N, grain(V), [&](int64_t b, int64_t e) {
      TINYGPT_DISPATCH(cross_entropy_bwd_bf16)(x + b * V, t + b, l + b, e - b, V, ignore_index, scale, g + b * V);
    });
  }
  return grad;
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("cross_entropy(Tensor logits, Tensor targets, int ignore_index) -> (Tensor loss, Tensor lse)");
  m.def("cross_entropy_backward(Tensor grad_loss, Tensor logits, Tensor targets, Tensor lse, int ignore_index) "
        "-> Tensor");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("cross_entropy", &tinygpt::cross_entropy_cpu);
  m.impl("cross_entropy_backward", &tinygpt::cross_entropy_backward_cpu);
}
