// Run-time choice among a kernel's per-ISA builds (see simd.h). The active ISA is the best one the
// CPU and the build support, capped by the environment variable TINYGPT_CPU_ISA=base|avx2|avx512
// or by set_cpu_isa (tests run every path this way).
#pragma once

namespace tinygpt {

enum class Isa : int { base = 0, avx2 = 1, avx512 = 2 };

Isa cpu_isa();            // the ISA kernels use now
Isa cpu_isa_supported();  // the best this CPU and build can run
bool cpu_has_bf16();       // native bf16 dot products (AVX512-BF16): bf16 matmuls run at full speed
void set_cpu_isa(Isa);    // throws std::invalid_argument if unsupported
const char* isa_name(Isa);

template <class F>
F pick_isa(F base, F avx2, F avx512) {
  switch (cpu_isa()) {
    case Isa::avx512: return avx512;
    case Isa::avx2: return avx2;
    default: return base;
  }
}

}  // namespace tinygpt

// Declares a kernel function in every ISA namespace, and picks the active one.
#ifdef TINYGPT_X86_ISAS
#define TINYGPT_DECLARE_ISA(decl) \
  namespace base { decl; }        \
  namespace avx2 { decl; }        \
  namespace avx512 { decl; }
#define TINYGPT_DISPATCH(fn) ::tinygpt::pick_isa(&::tinygpt::base::fn, &::tinygpt::avx2::fn, &::tinygpt::avx512::fn)
#else
#define TINYGPT_DECLARE_ISA(decl) \
  namespace base { decl; }
#define TINYGPT_DISPATCH(fn) (&::tinygpt::base::fn)
#endif
