// The sampling kernels of every ISA build (kernel.h); cpu.cpp picks one with TINYGPT_DISPATCH.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/cpu_isa.h"

namespace tinygpt {

// One row's parameters, already checked by the caller: temperature >= 0 (0 = greedy), top_k >= 0
// (0 or >= V: off), top_p in (0, 1] (1: off), min_p in [0, 1] (0: off), u in [0, 1).
struct SampleRow {
  double u;
  double temperature;
  int64_t top_k;
  double top_p;
  double min_p;
};

// What a row's kernel returns instead of a token id when the row cannot be sampled.
constexpr int64_t kSampleBadValue = -1;  // a NaN or +inf logit
constexpr int64_t kSampleAllNegInf = -2;  // every logit is -inf

namespace {

// Per-thread scratch of a row of V logits (see the layout in kernel.h): V rounded up to whole
// blocks of 64, four float arrays of that size plus 64 of slack (tempered exps, candidate values,
// candidate ids, a work copy), per-block sums (double) and maxima (float), and a histogram of
// 1024 doubles and 1024 counts.
constexpr int64_t kSampleBlock = 64;
constexpr int64_t sample_padded(int64_t V) { return (V + kSampleBlock - 1) / kSampleBlock * kSampleBlock; }
constexpr size_t sample_scratch_bytes(int64_t V) {
  const size_t vs = static_cast<size_t>(sample_padded(V)) + 64, nb = vs / kSampleBlock;
  const size_t nb_pad = (nb + 15) / 16 * 16;
  return 4 * vs * sizeof(float) + nb_pad * sizeof(double) + nb_pad * sizeof(float) + 1024 * sizeof(double) +
         1024 * sizeof(uint32_t);
}

}  // namespace

// Samples one row of V logits (float32 or bf16 bits) as tinygpt::sample defines it (see
// cpu.cpp): returns the token id, or kSampleBadValue / kSampleAllNegInf. With `probs` non-null it
// writes instead the V probabilities of the filtered, renormalized distribution it samples from
// (and returns 0 or the same error codes). `scratch` is 64-byte aligned, sample_scratch_bytes(V).
TINYGPT_DECLARE_ISA(int64_t sample_row_f32(const float* logits, int64_t V, const SampleRow& p, void* scratch,
                                           double* probs))
TINYGPT_DECLARE_ISA(int64_t sample_row_bf16(const uint16_t* logits, int64_t V, const SampleRow& p, void* scratch,
                                            double* probs))

}  // namespace tinygpt
