// Owns the torch.ops.tinygpt namespace. Each kernel adds its schema in its own
// csrc/ops/<kernel>/cpu.cpp with TORCH_LIBRARY_FRAGMENT(tinygpt, m) and its implementations with
// TORCH_LIBRARY_IMPL(tinygpt, CPU|CUDA, m); CMakeLists.txt picks those files up by glob.
#include <torch/library.h>

TORCH_LIBRARY(tinygpt, m) {}
