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
#include <cmath>
#include <optional>
#include <sstream>
#include <string>

#include "common/cuda_glue.h"
#include "sample/checks.h"
#include "sample/cuda.h"

namespace tinygpt::cuda {
namespace {

void check_logits(const char* op, const at::Tensor& logits) {
  check_device(op, logits);
  check_logits_shape(op, logits, true);
}

// A per-row parameter tensor on the logits' device: checked and made contiguous (float64 for the
// float parameters, int64 for top_k); undefined when absent.
at::Tensor per_row(const char* op, const char* name, const std::optional<at::Tensor>& t, const at::Tensor& logits,
                   bool integral) {
  if (!t.has_value()) return {};
  const at::Tensor& v = *t;
  TORCH_CHECK(v.device() == logits.device(), op, ": ", name, " must be on the logits' device (", logits.device(),
              "), got one on ", v.device());
  if (integral) {
    TORCH_CHECK_TYPE(v.scalar_type() == at::kLong, op, ": ", name, " must be an int64 tensor, got ", v.scalar_type());
  } else {
    TORCH_CHECK_TYPE(v.scalar_type() == at::kDouble || v.scalar_type() == at::kFloat, op, ": ", name,
                     " must be a float64 or float32 tensor, got ", v.scalar_type());
  }
  const int64_t B = logits.size(0);
  TORCH_CHECK_VALUE(v.dim() == 1 && v.size(0) == B, op, ": ", name, " must have shape (B,) with B = ", B,
                    " (the rows of logits), got shape ", v.sizes());
  return integral ? v.contiguous() : v.to(at::kDouble).contiguous();
}

struct Params {
  at::Tensor temperature, top_k, top_p, min_p;
  double temperature_s, top_p_s, min_p_s;
  int64_t top_k_s;
};

std::string where(const char* name, int64_t r, double v) {
  std::ostringstream s;
  s << name;
  if (r >= 0) s << "[" << r << "]";
  s << " = " << v;
  return s.str();
}

// The CPU op's checks of one row's (r >= 0) or the scalars' (r = -1) values.
void check_values(const char* op, int64_t r, double t, int64_t k, double p, double m) {
  TORCH_CHECK_VALUE(t >= 0.0, op, ": ", where("temperature", r, t), " is invalid: temperature must be >= 0 (0 is greedy)");
  TORCH_CHECK_VALUE(k >= 0, op, ": ", where("top_k", r, static_cast<double>(k)),
                    " is invalid: top_k must be >= 0 (0 keeps every token)");
  TORCH_CHECK_VALUE(p > 0.0 && p <= 1.0, op, ": ", where("top_p", r, p),
                    " is invalid: top_p must be in (0, 1] (1 keeps every token)");
  TORCH_CHECK_VALUE(m >= 0.0 && m <= 1.0, op, ": ", where("min_p", r, m),
                    " is invalid: min_p must be in [0, 1] (0 keeps every token)");
}

Params resolve(const char* op, const at::Tensor& logits, const std::optional<at::Tensor>& temperature,
               const std::optional<at::Tensor>& top_k, const std::optional<at::Tensor>& top_p,
               const std::optional<at::Tensor>& min_p, double temperature_s, int64_t top_k_s, double top_p_s,
               double min_p_s) {
  Params p;
  p.temperature = per_row(op, "temperature", temperature, logits, false);
  p.top_k = per_row(op, "top_k", top_k, logits, true);
  p.top_p = per_row(op, "top_p", top_p, logits, false);
  p.min_p = per_row(op, "min_p", min_p, logits, false);
  // The scalars (a neutral value where a tensor overrides one), checked on the host.
  p.temperature_s = p.temperature.defined() ? 1.0 : temperature_s;
  p.top_k_s = p.top_k.defined() ? 0 : top_k_s;
  p.top_p_s = p.top_p.defined() ? 1.0 : top_p_s;
  p.min_p_s = p.min_p.defined() ? 0.0 : min_p_s;
  check_values(op, -1, p.temperature_s, p.top_k_s, p.top_p_s, p.min_p_s);
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
  TORCH_CHECK(uniform.device() == logits.device(), op, ": uniform must be on the logits' device (", logits.device(),
              "), got one on ", uniform.device());
  TORCH_CHECK_TYPE(uniform.scalar_type() == at::kDouble, op, ": uniform must be float64, got ", uniform.scalar_type());
  TORCH_CHECK_VALUE(uniform.dim() == 1 && uniform.size(0) == B, op, ": uniform must have shape (B,) with B = ", B,
                    " (the rows of logits), got shape ", uniform.sizes());
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
  const int64_t B = logits.size(0), V = logits.size(1);
  for (int64_t r = 0; r < B; ++r) {
    if (s[r] == 0) continue;
    if (s[r] == kSampleCodeBadParam) {
      const auto f = [&](const at::Tensor& t, double dflt) {
        return t.defined() ? t[r].item<double>() : dflt;
      };
      const double t = f(p.temperature, p.temperature_s), tp = f(p.top_p, p.top_p_s), m = f(p.min_p, p.min_p_s);
      const int64_t k = p.top_k.defined() ? p.top_k[r].item<int64_t>() : p.top_k_s;
      check_values(op, r, t, k, tp, m);
    }
    TORCH_CHECK_VALUE(s[r] != kSampleCodeAllNegInf, op, ": row ", r,
                      " of logits is all -inf: there is no token to sample");
    const at::Tensor row = logits[r].to(at::kFloat).cpu().contiguous();
    const float* x = row.const_data_ptr<float>();
    for (int64_t i = 0; i < V; ++i) {
      TORCH_CHECK_VALUE(!std::isnan(x[i]), op, ": logits[", r, ", ", i, "] is NaN (logits must not hold NaN)");
      TORCH_CHECK_VALUE(!(std::isinf(x[i]) && x[i] > 0), op, ": logits[", r, ", ", i,
                        "] is +inf (logits must be finite or -inf)");
    }
    TORCH_CHECK(false, op, ": row ", r, " of logits could not be sampled (code ", s[r], ")");
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
