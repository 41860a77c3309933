// tinygpt._cuda_emu: the CUDA kernels compiled for the CPU emulation (see emu.h). Importing it
// registers their glue as the CPU implementations of torch.ops.tinygpt_emu.*, which
// tinygpt/ops/emulation.py defines first with the schemas of torch.ops.tinygpt.*.
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_cuda_emu, m) { m.doc() = "tinygpt's CUDA kernels on a CPU emulation of CUDA (for tests)"; }
