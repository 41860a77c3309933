// Launcher of the sampling CUDA kernel (cuda.cu); pointers are device pointers, contiguous,
// stream a cudaStream_t. Returns nullptr or the CUDA error's text.
//   logits (B, V) of dtype dt; per-row parameters (B,) or nullptr for the scalar after them
//   (temperature, top_p, min_p float64, top_k int64); uniform (B,) float64.
// Exactly one of ids (B,) int64 (sample) and probs (B, V) float64 (sample_probs) is non-null.
// status (B,) int64 may be null; else it gets 0 or the row's error code below. A row that cannot
// be sampled gets the code in ids instead of a token id (and NaN probabilities): nothing is
// raised on the device, and `sample` never synchronises with the host.
#pragma once

#include <cstdint>

#include "common/cuda_dtype.h"

namespace tinygpt::cuda {

constexpr int64_t kSampleCodeBadValue = -1;  // the row holds a NaN or +inf logit
constexpr int64_t kSampleCodeAllNegInf = -2;  // every logit of the row is -inf
constexpr int64_t kSampleCodeBadParam = -3;   // a per-row parameter or the row's uniform is invalid

struct SampleArgs {
  const void* logits;
  int64_t B, V;
  const double* uniform;      // sample only
  const double* temperature;  // per-row tensors or null
  const int64_t* top_k;
  const double* top_p;
  const double* min_p;
  double temperature_s, top_p_s, min_p_s;
  int64_t top_k_s;
  int64_t* ids;     // sample
  double* probs;    // sample_probs
  int64_t* status;  // optional
};

const char* sample_launch(DType dt, const SampleArgs& a, void* stream);

}  // namespace tinygpt::cuda
