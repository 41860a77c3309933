// torch glue of the sampling CUDA kernel (sample/cuda.cu); see common/cuda_glue.h.
// The same checks as the CPU op (sample/cpu.cpp) for everything the host holds: shapes, dtypes,
// devices and the scalar parameters. What lives on the device (per-row parameters, uniforms, the
// logits' values) is checked by the kernel, which cannot raise:
//  - `sample` never synchronises (it works under CUDA graph capture): a row it cannot sample gets
//    a negative id instead of a token (-1: a NaN or +inf logit; -2: all logits -inf; -3: a per-row
//    parameter or its uniform out of range; see sample/cuda.h);
//  - `sample_probs` (for tests and docs) reads the kernel's per-row status back and raises the CPU
//    op's errors.
// float16 logits are taken too (the CPU op has float32 and bfloat16).
#include <optional>

#include "common/cuda_glue.h"
#include "ops/sample/checks.h"
#include "ops/sample/cuda.h"

namespace tinygpt::cuda {
namespace {

void check_logits(const char* op, const at::Tensor& logits) {
  check_device(op, logits);
  check_logits_shape(op, logits, true);
}

struct Params {
  at::Tensor temperature, top_k, top_p, min_p;  // per-row values on the device, or undefined
  double temperature_s, top_p_s, min_p_s;        // the scalars (a neutral value where a tensor overrides one)
  int64_t top_k_s;
};

Params resolve(const char* op, const at::Tensor& logits, const std::optional<at::Tensor>& temperature,
               const std::optional<at::Tensor>& top_k, const std::optional<at::Tensor>& top_p,
               const std::optional<at::Tensor>& min_p, double temperature_s, int64_t top_k_s, double top_p_s,
               double min_p_s) {
  Params p;
  p.temperature = param_tensor(op, "temperature", temperature, logits, false);
  p.top_k = param_tensor(op, "top_k", top_k, logits, true);
  p.top_p = param_tensor(op, "top_p", top_p, logits, false);
  p.min_p = param_tensor(op, "min_p", min_p, logits, false);
  p.temperature_s = p.temperature.defined() ? 1.0 : temperature_s;
  p.top_k_s = p.top_k.defined() ? 0 : top_k_s;
  p.top_p_s = p.top_p.defined() ? 1.0 : top_p_s;
  p.min_p_s = p.min_p.defined() ? 0.0 : min_p_s;
  // The scalars are checked on the host; the per-row values by the kernel.
  check_param_values(op, {"temperature", p.temperature_s, -1}, {"top_k", p.top_k_s, -1}, {"top_p", p.top_p_s, -1},
                     {"min_p", p.min_p_s, -1});
  return p;
}

SampleArgs args_for(const at::Tensor& logits, const Params& p) {
  SampleArgs a{};
  a.logits = logits.const_data_ptr();
  a.B = logits.size(0);
  a.V = logits.size(1);
  a.temperature = p.temperature.defined() ? p.temperature.const_data_ptr<double>() : nullptr;
  a.top_k = p.top_k.defined() ? p.top_k.const_data_ptr<int64_t>() : nullptr;
  a.top_p = p.top_p.defined() ? p.top_p.const_data_ptr<double>() : nullptr;
  a.min_p = p.min_p.defined() ? p.min_p.const_data_ptr<double>() : nullptr;
  a.temperature_s = p.temperature_s;
  a.top_k_s = p.top_k_s;
  a.top_p_s = p.top_p_s;
  a.min_p_s = p.min_p_s;
  return a;
}

at::Tensor sample_cuda(const at::Tensor& logits, const at::Tensor& uniform, const std::optional<at::Tensor>& temperature,
                       const std::optional<at::Tensor>& top_k, const std::optional<at::Tensor>& top_p,
                       const std::optional<at::Tensor>& min_p, double temperature_s, int64_t top_k_s, double top_p_s,
                       double min_p_s) {
  constexpr const char* op = "tinygpt::sample";
  check_logits(op, logits);
  const int64_t B = logits.size(0);
  check_uniform(op, uniform, logits);
  const Params p = resolve(op, logits, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s);
  c10::OptionalDeviceGuard guard(logits.device());
  at::Tensor out = at::empty({B}, logits.options().dtype(at::kLong));
  if (B == 0) return out;
  const at::Tensor u = uniform.contiguous();
  SampleArgs a = args_for(logits, p);
  a.uniform = u.const_data_ptr<double>();
  a.ids = out.mutable_data_ptr<int64_t>();
  check_launch(op, sample_launch(dtype_of(op, logits), a, stream_for(logits)));
  return out;
}

// Raises the CPU op's error for the first row the kernel could not sample (status read back).
void raise_for_status(const char* op, const at::Tensor& logits, const at::Tensor& status, const Params& p) {
  const at::Tensor st = status.cpu();
  const int64_t* s = st.const_data_ptr<int64_t>();
  for (int64_t r = 0; r < logits.size(0); ++r) {
    if (s[r] == 0) continue;
    if (s[r] == kSampleCodeBadParam) {
      const auto at_row = [&](const char* name, const at::Tensor& t, auto scalar) {
        using T = decltype(scalar);
        return t.defined() ? ParamValue<T>{name, t[r].item<T>(), r} : ParamValue<T>{name, scalar, -1};
      };
      check_param_values(op, at_row("temperature", p.temperature, p.temperature_s),
                         at_row("top_k", p.top_k, p.top_k_s), at_row("top_p", p.top_p, p.top_p_s),
                         at_row("min_p", p.min_p, p.min_p_s));
    }
    raise_bad_logits_row(op, logits, r);
  }
}

at::Tensor sample_probs_cuda(const at::Tensor& logits, const std::optional<at::Tensor>& temperature,
                             const std::optional<at::Tensor>& top_k, const std::optional<at::Tensor>& top_p,
                             const std::optional<at::Tensor>& min_p, double temperature_s, int64_t top_k_s,
                             double top_p_s, double min_p_s) {
  constexpr const char* op = "tinygpt::sample_probs";
  check_logits(op, logits);
  const Params p = resolve(op, logits, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s);
  c10::OptionalDeviceGuard guard(logits.device());
  const int64_t B = logits.size(0), V = logits.size(1);
  at::Tensor out = at::empty({B, V}, logits.options().dtype(at::kDouble));
  if (B == 0) return out;
  at::Tensor status = at::empty({B}, logits.options().dtype(at::kLong));
  SampleArgs a = args_for(logits, p);
  a.probs = out.mutable_data_ptr<double>();
  a.status = status.mutable_data_ptr<int64_t>();
  check_launch(op, sample_launch(dtype_of(op, logits), a, stream_for(logits)));
  raise_for_status(op, logits, status, p);
  return out;
}

}  // namespace
}  // namespace tinygpt::cuda

TINYGPT_CUDA_IMPL(m) {
  m.impl("sample", &tinygpt::cuda::sample_cuda);
  m.impl("sample_probs", &tinygpt::cuda::sample_probs_cuda);
}
