// Input checks of tinygpt::sample(_probs) shared by the CPU and CUDA glue, so both raise the same
// errors (each checks the logits' device itself).
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

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

// sample's uniforms: (B,) float64 on the logits' device (their range is checked where they are read).
inline void check_uniform(const char* op, const at::Tensor& uniform, const at::Tensor& logits) {
  TORCH_CHECK(uniform.device() == logits.device(), op, ": uniform must be on the logits' device (", logits.device(),
              "), got one on ", uniform.device());
  TORCH_CHECK_TYPE(uniform.scalar_type() == at::kDouble, op, ": uniform must be float64, got ", uniform.scalar_type());
  const int64_t B = logits.size(0);
  TORCH_CHECK_VALUE(uniform.dim() == 1 && uniform.size(0) == B, op, ": uniform must have shape (B,) with B = ", B,
                    " (the rows of logits), got shape ", uniform.sizes());
}

// A per-row parameter tensor, checked (on the logits' device, shape (B,), int64 for top_k, float64
// or float32 for the others) and made contiguous (float64 for the float parameters); undefined
// when absent.
inline at::Tensor param_tensor(const char* op, const char* name, const std::optional<at::Tensor>& t,
                               const at::Tensor& logits, bool integral) {
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

// One parameter's value and where it came from, for messages: "top_p = 2" (the scalar, row < 0)
// or "top_p[3] = 2" (row 3 of its tensor).
template <class T>
struct ParamValue {
  const char* name;
  T value;
  int64_t row;
};

template <class T>
std::string describe(const ParamValue<T>& v) {
  std::ostringstream s;
  s << v.name;
  if (v.row >= 0) s << "[" << v.row << "]";
  s << " = " << v.value;
  return s.str();
}

inline void check_param_values(const char* op, const ParamValue<double>& t, const ParamValue<int64_t>& k,
                               const ParamValue<double>& p, const ParamValue<double>& m) {
  TORCH_CHECK_VALUE(t.value >= 0.0, op, ": ", describe(t), " is invalid: temperature must be >= 0 (0 is greedy)");
  TORCH_CHECK_VALUE(k.value >= 0, op, ": ", describe(k), " is invalid: top_k must be >= 0 (0 keeps every token)");
  TORCH_CHECK_VALUE(p.value > 0.0 && p.value <= 1.0, op, ": ", describe(p),
                    " is invalid: top_p must be in (0, 1] (1 keeps every token)");
  TORCH_CHECK_VALUE(m.value >= 0.0 && m.value <= 1.0, op, ": ", describe(m),
                    " is invalid: min_p must be in [0, 1] (0 keeps every token)");
}

// Raises why row r of logits cannot be sampled: all -inf, a NaN or a +inf (read from the logits).
[[noreturn]] inline void raise_bad_logits_row(const char* op, const at::Tensor& logits, int64_t r) {
  const at::Tensor row = logits[r].to(at::kFloat).cpu().contiguous();
  const float* x = row.const_data_ptr<float>();
  const int64_t V = row.numel();
  bool all_neg_inf = true;
  for (int64_t i = 0; i < V; ++i) {
    TORCH_CHECK_VALUE(!std::isnan(x[i]), op, ": logits[", r, ", ", i, "] is NaN (logits must not hold NaN)");
    TORCH_CHECK_VALUE(!(std::isinf(x[i]) && x[i] > 0), op, ": logits[", r, ", ", i,
                      "] is +inf (logits must be finite or -inf)");
    all_neg_inf = all_neg_inf && std::isinf(x[i]);
  }
  TORCH_CHECK_VALUE(!all_neg_inf, op, ": row ", r, " of logits is all -inf: there is no token to sample");
  TORCH_CHECK(false, op, ": row ", r, " of logits could not be sampled");
}

}  // namespace tinygpt
