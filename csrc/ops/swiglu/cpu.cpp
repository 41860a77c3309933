// torch glue of the fused SwiGLU gate (kernels in swiglu/kernel.h): schemas, checks, threading.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "ops/swiglu/kernel_api.h"

namespace tinygpt {
namespace {

// Threads split the data in blocks of 16 elements (whole vectors but for the very end), at least
// 1024 blocks (16K elements) a task.
constexpr int64_t kBlock = 16, kGrainBlocks = 1024;

template <class F>
void for_blocks(int64_t n, const F& f) {
  at::parallel_for(0, (n + kBlock - 1) / kBlock, kGrainBlocks,
                   [&](int64_t s, int64_t e) { f(s * kBlock, std::min(e * kBlock, n)); });
}

void check_pair(const char* op, const char* an, const at::Tensor& a, const char* bn, const at::Tensor& b) {
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), op, ": the CPU kernel needs CPU tensors, got ", an,
              " on ", a.device(), " and ", bn, " on ", b.device());
  TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kBFloat16, op, ": ", an,
              " must be float32 or bfloat16, got ", a.scalar_type());
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), op, ": ", bn, " must have ", an, "'s dtype (", a.scalar_type(),
              "), got ", b.scalar_type());
  TORCH_CHECK(b.sizes() == a.sizes(), op, ": ", bn, " must have ", an, "'s shape ", a.sizes(), ", got ",
              b.sizes());
  TORCH_CHECK(a.is_contiguous(), op, ": ", an, " must be contiguous");
  TORCH_CHECK(b.is_contiguous(), op, ": ", bn, " must be contiguous");
}

template <class T>
const T* in(const at::Tensor& t) { return static_cast<const T*>(t.const_data_ptr()); }
template <class T>
T* out(at::Tensor& t) { return static_cast<T*>(t.mutable_data_ptr()); }

at::Tensor swiglu_cpu(const at::Tensor& a, const at::Tensor& b) {
  check_pair("swiglu", "a", a, "b", b);
  at::Tensor y = at::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return y;
  auto run = [&](auto fn, auto ap, auto bp, auto yp) {
    for_blocks(n, [&](int64_t s, int64_t e) { fn(ap + s, bp + s, yp + s, e - s); });
  };
  if (a.scalar_type() == at::kBFloat16)
    run(TINYGPT_DISPATCH(swiglu_fwd_bf16), in<uint16_t>(a), in<uint16_t>(b), out<uint16_t>(y));
  else
    run(TINYGPT_DISPATCH(swiglu_fwd_f32), in<float>(a), in<float>(b), out<float>(y));
  return y;
}

std::tuple<at::Tensor, at::Tensor> swiglu_backward_cpu(const at::Tensor& dy, const at::Tensor& a,
                                                       const at::Tensor& b) {
  check_pair("swiglu_backward", "a", a, "b", b);
  check_pair("swiglu_backward", "a", a, "dy", dy);
  at::Tensor da = at::empty_like(a), db = at::empty_like(b);
  const int64_t n = a.numel();
  if (n == 0) return {da, db};
  auto run = [&](auto fn, auto dyp, auto ap, auto bp, auto dap, auto dbp) {
    for_blocks(n, [&](int64_t s, int64_t e) {
      fn(dyp + s, ap + s, bp + s, dap + s, dbp + s, e - s);
    });
  };
  if (a.scalar_type() == at::kBFloat16)
    run(TINYGPT_DISPATCH(swiglu_bwd_bf16), in<uint16_t>(dy), in<uint16_t>(a), in<uint16_t>(b), out<uint16_t>(da),
        out<uint16_t>(db));
  else
    run(TINYGPT_DISPATCH(swiglu_bwd_f32), in<float>(dy), in<float>(a), in<float>(b), out<float>(da),
        out<float>(db));
  return {da, db};
}

}  // namespace
}  // namespace tinygpt

TORCH_LIBRARY_FRAGMENT(tinygpt, m) {
  m.def("swiglu(Tensor a, Tensor b) -> Tensor");
  m.def("swiglu_backward(Tensor dy, Tensor a, Tensor b) -> (Tensor da, Tensor db)");
}

TORCH_LIBRARY_IMPL(tinygpt, CPU, m) {
  m.impl("swiglu", &tinygpt::swiglu_cpu);
  m.impl("swiglu_backward", &tinygpt::swiglu_backward_cpu);
}
