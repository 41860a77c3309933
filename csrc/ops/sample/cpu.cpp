// torch glue for the fused sampler (kernels in kernel.h, one build per ISA):
//   tinygpt::sample(logits, uniform, temperature?, top_k?, top_p?, min_p?,
//                   temperature_s, top_k_s, top_p_s, min_p_s) -> ids
//   tinygpt::sample_probs(logits, temperature?, top_k?, top_p?, min_p?,
//                         temperature_s, top_k_s, top_p_s, min_p_s) -> probs
// logits (B, V) float32 or bfloat16; uniform (B,) float64 in [0, 1), one number per row (the op
// is deterministic given it); each optional tensor is a (B,) per-row value that overrides the
// scalar after it (temperature, top_p, min_p float64 or float32; top_k int64). ids (B,) int64;
// probs (B, V) float64 is the filtered, renormalized distribution that `sample` draws from (for
// tests and docs). The semantics are written down in tinygpt/ops/reference.py (sample_probs).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "common/cpu_isa.h"
#include "ops/sample/checks.h"
#include "ops/sample/kernel_api.h"

namespace tinygpt {
namespace {

void check_logits(const char* op, const at::Tensor& logits) {
  TORCH_CHECK(logits.device().is_cpu(), op, ": logits must be a CPU tensor, got one on ", logits.device());
  check_logits_shape(op, logits, false);
}

// A per-row parameter: the tensor's value at each row if given, else the scalar.
template <class T>
struct Param {
  const char* name;
  T scalar;
  at::Tensor tensor;  // contiguous, float64 or int64; undefined for the scalar
  const T* rows = nullptr;

  Param(const char* op, const char* name_, const std::optional<at::Tensor>& t, T s, const at::Tensor& logits)
      : name(name_), scalar(s), tensor(param_tensor(op, name_, t, logits, std::is_integral_v<T>)) {
    if (tensor.defined()) rows = tensor.data_ptr<T>();
  }
  bool per_row() const { return rows != nullptr; }
  // Row r's value (r < 0: the scalar, or a neutral value when a tensor overrides it).
  ParamValue<T> at(int64_t r, T neutral) const {
    if (!per_row()) return {name, scalar, -1};
    return {name, r >= 0 ? rows[r] : neutral, r};
  }
};

std::vector<SampleRow> resolve_params(const char* op, const at::Tensor& logits,
                                      const std::optional<at::Tensor>& temperature,
                                      const std::optional<at::Tensor>& top_k,
                                      const std::optional<at::Tensor>& top_p,
                                      const std::optional<at::Tensor>& min_p, double temperature_s,
                                      int64_t top_k_s, double top_p_s, double min_p_s) {
  const Param<double> T(op, "temperature", temperature, temperature_s, logits);
  const Param<int64_t> K(op, "top_k", top_k, top_k_s, logits);
  const Param<double> P(op, "top_p", top_p, top_p_s, logits);
  const Param<double> M(op, "min_p", min_p, min_p_s, logits);
  const auto check = [&](int64_t r) {
    const ParamValue<double> t = T.at(r, 1.0), p = P.at(r, 1.0), m = M.at(r, 0.0);
    const ParamValue<int64_t> k = K.at(r, 0);
    check_param_values(op, t, k, p, m);
    return SampleRow{0.0, t.value, k.value, p.value, m.value};
  };
  const int64_t B = logits.size(0);
  std::vector<SampleRow> rows(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) rows[static_cast<size_t>(r)] = check(r);
  // Scalars are checked even when no row uses them (B = 0), so a bad call fails the same way.
  if (B == 0) check(-1);
  return rows;
}

// Per-thread scratch, grown to the largest vocabulary seen, 64-byte aligned.
void* scratch_for(int64_t V) {
  thread_local std::vector<unsigned char> buf;
  const size_t need = sample_scratch_bytes(V) + 64;
  if (buf.size() < need) buf.resize(need);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<void*>((p + 63) & ~uintptr_t{63});
}

// Rows per task: about 16K logits, at least one row.
int64_t grain(int64_t V) { return std::max<int64_t>(1, (int64_t{1} << 14) / V); }

template <class F>
void run_rows(const at::Tensor& logits, const std::vector<SampleRow>& rows, std::vector<int64_t>& status,
              F&& store) {
  const int64_t B = logits.size(0), V = logits.size(1);
  const SampleRow* rp = rows.data();
  int64_t* st = status.data();
  if (logits.scalar_type() == at::kFloat) {
    const float* x = logits.data_ptr<float>();
    const auto fn = TINYGPT_DISPATCH(sample_row_f32);
    at::parallel_for(0, B, grain(V), [&](int64_t b, int64_t e) {
      void* scratch = scratch_for(V);
      for (int64_t r = b; r < e; ++r) st[r] = fn(x + r * V, V, rp[r], scratch, store(r));
    });
  } else {
    const auto* x = reinterpret_cast<const uint16_t*>(logits.data_ptr<at::BFloat16>());
    const auto fn = TINYGPT_DISPATCH(sample_row_bf16);
    at::parallel_for(0, B, grain(V), [&](int64_t b, int64_t e) {
      void* scratch = scratch_for(V);
      for (int64_t r = b; r < e; ++r) st[r] = fn(x + r * V, V, rp[r], scratch, store(r));
    });
  }
}

// Raises for the first row a kernel could not sample, naming the first bad logit.
void check_status(const char* op, const at::Tensor& logits, const int64_t* st) {
  for (int64_t r = 0; r < logits.size(0); ++r)
    if (st[r] < 0) raise_bad_logits_row(op, logits, r);
}

at::Tensor sample_cpu(const at::Tensor& logits, const at::Tensor& uniform,
                      const std::optional<at::Tensor>& temperature, const std::optional<at::Tensor>& top_k,
                      const std::optional<at::Tensor>& top_p, const std::optional<at::Tensor>& min_p,
                      double temperature_s, int64_t top_k_s, double top_p_s, double min_p_s) {
  constexpr const char* op = "tinygpt::sample";
  check_logits(op, logits);
  const int64_t B = logits.size(0);
  check_uniform(op, uniform, logits);
  std::vector<SampleRow> rows =
      resolve_params(op, logits, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s);
  const at::Tensor u = uniform.contiguous();
  const double* up = u.data_ptr<double>();
  for (int64_t r = 0; r < B; ++r) {
    TORCH_CHECK_VALUE(up[r] >= 0.0 && up[r] < 1.0, op, ": uniform[", r, "] = ", up[r],
                      " is outside [0, 1)");
    rows[static_cast<size_t>(r)].u = up[r];
  }
  at::Tensor out = at::empty({B}, logits.options().dtype(at::kLong));
  if (B == 0) return out;
  std::vector<int64_t> status(static_cast<size_t>(B));
  run_rows(logits, rows, status, [](int64_t) -> double* { return nullptr; });
  check_status(op, logits, status.data());
  std::copy(status.begin(), status.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor sample_probs_cpu(const at::Tensor& logits, const std::optional<at::Tensor>& temperature,
                            const std::optional<at::Tensor>& top_k, const std::optional<at::Tensor>& top_p,
                            const std::optional<at::Tensor>& min_p, double temperature_s, int64_t top_k_s,
                            double top_p_s, double min_p_s) {
  constexpr const char* op = "tinygpt::sample_probs";
  check_logits(op, logits);
  const int64_t B = logits.size(0), V = logits.size(1);
  const std::vector<SampleRow> rows =
      resolve_params(op, logits, temperature, top_k, top_p, min_p, temperature_s, top_k_s, top_p_s, min_p_s);
  at::Tensor out = at::empty({B, V}, logits.options().dtype(at::kDouble));
  if (B == 0) return out;
  std::vector<int64_t> status(static_cast<size_t>(B));
  double* o = out.data_ptr<double>();
  run_rows(logits, rows, status, [o, V](int64_t r) { return o + r * V; });
  check_status(op, logits, status.data());
  return out;
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("sample(Tensor logits, Tensor uniform, Tensor? temperature, Tensor? top_k, Tensor? top_p, Tensor? min_p, "
        "float temperature_s, int top_k_s, float top_p_s, float min_p_s) -> Tensor");
  m.def("sample_probs(Tensor logits, Tensor? temperature, Tensor? top_k, Tensor? top_p, Tensor? min_p, "
        "float temperature_s, int top_k_s, float top_p_s, float min_p_s) -> Tensor");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("sample", &tinygpt::sample_cpu);
  m.impl("sample_probs", &tinygpt::sample_probs_cpu);
}
