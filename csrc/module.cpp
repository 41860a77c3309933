// The tinygpt._C extension module: pybind11 holds the non-tensor APIs (the tokenizer); tensor
// ops register with the dispatcher through TORCH_LIBRARY (see csrc/ops/library.cpp) and are
// reached as torch.ops.tinygpt.*.
#include <pybind11/pybind11.h>

#include <string>

#include "common/cpu_isa.h"

namespace tinygpt {
void bind_tokenizer(pybind11::module_& m);
void set_cpu_isa_by_name(const std::string& name);
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinygpt native core";
#ifdef TINYGPT_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  tinygpt::bind_tokenizer(m);
  // Which per-ISA build of the CPU kernels runs; tests switch it to cover every path.
  m.def("_cpu_isa", [] { return std::string(tinygpt::isa_name(tinygpt::cpu_isa())); });
  m.def("_cpu_isa_supported", [] { return std::string(tinygpt::isa_name(tinygpt::cpu_isa_supported())); });
  // Whether bf16 autocast pays off on this CPU (it runs anywhere, but slowly without it).
  m.def("_cpu_has_bf16", [] { return tinygpt::cpu_has_bf16(); });
  m.def("_set_cpu_isa", [](const std::string& name) {
    try {
      tinygpt::set_cpu_isa_by_name(name);
    } catch (const std::invalid_argument& e) {
      throw pybind11::value_error(e.what());
    }
  });
}
