// Shared helpers of the torch glue for the CUDA kernels (csrc/ops/<kernel>/*_cuda.cpp). The glue
// includes torch but no CUDA header: it hands raw pointers and the current stream (as void*) to
// the launchers declared in csrc/ops/<kernel>/cuda.h. The same glue builds two ways:
//  - in CUDA builds, registered as the CUDA implementations of torch.ops.tinygpt.*;
//  - in the emulation module (TINYGPT_CUDA_EMU), registered as the CPU implementations of
//    torch.ops.tinygpt_emu.* (same schemas), running the kernels on the CPU emulation.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <cstdint>

#include "common/cuda_dtype.h"

#ifdef TINYGPT_CUDA_EMU
#define TINYGPT_CUDA_IMPL(m) TORCH_LIBRARY_IMPL(tinygpt_emu, CPU, m)
#else
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <dlfcn.h>
#define TINYGPT_CUDA_IMPL(m) TORCH_LIBRARY_IMPL(tinygpt, CUDA, m)
#endif

namespace tinygpt::cuda {

// The stream kernels on `t`'s device go to: torch's current stream (null in the emulation).
inline void* stream_for(const at::Tensor& t) {
#ifdef TINYGPT_CUDA_EMU
  (void)t;
  return nullptr;
#else
  // Without torch's CUDA headers (a CPU torch cannot compile them): torch's stable C shim in
  // libtorch_cuda, looked up at run time so that no torch version can fail the import; else
  // the device-generic c10::Stream::native_handle.
  using GetStream = int32_t (*)(int32_t, void**);
  static const GetStream get = [] {
    void* lib = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
    return lib ? reinterpret_cast<GetStream>(dlsym(lib, "aoti_torch_get_current_cuda_stream")) : nullptr;
  }();
  void* s = nullptr;
  if (get && get(t.device().index(), &s) == 0) return s;
  return c10::impl::getDeviceGuardImpl(t.device().type())->getStream(t.device()).native_handle();
#endif
}

// Every tensor on the kernel's device (CUDA; the CPU under emulation) and on one device.
template <class... Ts>
inline void check_device(const char* op, const at::Tensor& first, const Ts&... rest) {
#ifdef TINYGPT_CUDA_EMU
  TORCH_CHECK(first.is_cpu(), op, ": the CUDA emulation takes CPU tensors, got ", first.device());
#else
  TORCH_CHECK(first.is_cuda(), op, ": the CUDA kernel needs CUDA tensors, got ", first.device());
#endif
  (
      [&] {
        TORCH_CHECK(rest.device() == first.device(), op, ": all tensors must be on one device, got ",
                    first.device(), " and ", rest.device());
      }(),
      ...);
}

inline DType dtype_of(const char* op, const at::Tensor& t, bool allow_f16 = true) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::f32;
    case at::kBFloat16: return DType::bf16;
    case at::kHalf:
      if (allow_f16) return DType::f16;
      [[fallthrough]];
    default:
      TORCH_CHECK(false, op, ": expected float32, bfloat16", allow_f16 ? " or float16" : "", ", got ",
                  t.scalar_type());
  }
}

// Turns a launcher's error text into a Python exception.
inline void check_launch(const char* op, const char* err) {
  TORCH_CHECK(err == nullptr, op, ": CUDA error: ", err);
}

}  // namespace tinygpt::cuda
