// The tinygpt._C extension module: pybind11 holds the non-tensor APIs (the tokenizer); tensor
// ops register with the dispatcher through TORCH_LIBRARY (see csrc/ops/library.cpp) and are
// reached as torch.ops.tinygpt.*.
#include <pybind11/pybind11.h>

namespace tinygpt {
void bind_tokenizer(pybind11::module_& m);
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinygpt native core";
#ifdef TINYGPT_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  tinygpt::bind_tokenizer(m);
}
