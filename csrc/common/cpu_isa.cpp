#include "common/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tinygpt {
namespace {

Isa detect() {
#if defined(TINYGPT_X86_ISAS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::avx2;
#endif
  return Isa::base;
}

Isa parse(const std::string& s) {
  if (s == "base") return Isa::base;
  if (s == "avx2") return Isa::avx2;
  if (s == "avx512") return Isa::avx512;
  throw std::invalid_argument("unknown CPU instruction set '" + s + "' (expected base, avx2 or avx512)");
}

Isa initial() {
  Isa best = detect();
  if (const char* env = std::getenv("TINYGPT_CPU_ISA")) {
    try {
      Isa want = parse(env);
      return static_cast<int>(want) < static_cast<int>(best) ? want : best;
    } catch (const std::invalid_argument&) {
    }
  }
  return best;
}

std::atomic<int>& active() {
  static std::atomic<int> isa{static_cast<int>(initial())};
  return isa;
}

}  // namespace

Isa cpu_isa_supported() {
  static const Isa best = detect();
  return best;
}

bool cpu_has_bf16() {
#if defined(TINYGPT_X86_ISAS) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Isa cpu_isa() { return static_cast<Isa>(active().load(std::memory_order_relaxed)); }

void set_cpu_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(cpu_isa_supported()))
    throw std::invalid_argument(std::string("this CPU or build cannot run ") + isa_name(isa) +
                                " (best: " + isa_name(cpu_isa_supported()) + ")");
  active().store(static_cast<int>(isa));
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "base";
  }
}

// For the Python binding: by name.
void set_cpu_isa_by_name(const std::string& name) { set_cpu_isa(parse(name)); }

}  // namespace tinygpt
