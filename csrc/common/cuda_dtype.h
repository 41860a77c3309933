// The element types the CUDA kernels take, named without CUDA or torch headers so that the
// torch glue (*_cuda.cpp) and the kernels (cuda.cu) share one declaration of each launcher.
#pragma once

namespace tinygpt::cuda {
enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };
}
