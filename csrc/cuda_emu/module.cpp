// tinygpt._cuda_emu: the CUDA kernels compiled for the CPU emulation (see emu.h). Importing it
// registers their glue as the CPU implementations of torch.ops.tinygpt_emu.*, which
// tinygpt/ops/emulation.py defines first with the schemas of torch.ops.tinygpt.*.
#include <pybind11/pybind11.h>

namespace tinygpt::cuda {
void bind_emulation_selftest(pybind11::module_& m);
}

PYBIND11_MODULE(_cuda_emu, m) {
  m.doc() = "tinygpt's CUDA kernels on a CPU emulation of CUDA (for tests)";
  tinygpt::cuda::bind_emulation_selftest(m);
}
