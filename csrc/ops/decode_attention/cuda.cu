// Single-query decode attention on the GPU (semantics: tinygpt/ops/reference.py, decode_attention;
// the CPU op is csrc/ops/decode_attention/cpu.cpp). fp32 math for fp32/bf16/fp16 data.
//
// One block per (row b, query head h), kWarps warps. The block reads positions[b] on the device
// (no host sync: it works under CUDA graph capture). pos = -1 marks an idle row; a position
// outside [-1, Smax) cannot raise here and is treated as idle too: nothing is read or written and
// the output is zeros.
//   1. The block turns the row's new key (of h's key/value head) and its query by the rotary angle
//      of pos, in fp32 without FMA contraction (as torch's rope: x1 c - x2 s, x1 s + x2 c), and
//      rounds both to the data type, as the rope op does. The block of the group's first query
//      head writes the key and the value into the caches at pos; every block of the group uses its
//      own copy of them for key pos (no block waits for another).
//   2. Keys [0, pos] are dealt round robin to the warps; each lane holds kDpl of the D dims. Per
//      key: a warp-wide dot product, then an online softmax (running max m, sum l, and the
//      weighted sum of values, rescaled when m grows).
//   3. The warps' (m, l, acc) are merged through shared memory: out = sum_w acc_w e^(m_w - M) /
//      sum_w l_w e^(m_w - M).
#include "common/cuda_compat.h"
#include "ops/decode_attention/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxD = static_cast<int>(kDecodeMaxHeadDim);

template <class T>
__device__ __forceinline__ float round_to(float v) {
  const T t = tg_from_float<T>(v);
  return tg_load(&t);
}

// kDpl: dims per lane (D <= 32 * kDpl); lane l holds dims l, l + 32, ...
template <class T, int kDpl>
__global__ void __launch_bounds__(kWarps * 32)
    decode_attn_kernel(const T* __restrict__ qkv, T* __restrict__ kc, T* __restrict__ vc,
                       const int64_t* __restrict__ positions, const float* __restrict__ cos,
                       const float* __restrict__ sin, T* __restrict__ out, int64_t H, int64_t Hkv, int64_t Smax,
                       int64_t D, float scale) {
  __shared__ float q_s[kMaxD], k_s[kMaxD], v_s[kMaxD];
  __shared__ float acc_s[kWarps][kMaxD];
  __shared__ float m_s[kWarps], l_s[kWarps];

  const int64_t b = blockIdx.x / H, h = blockIdx.x % H;
  const int64_t G = H / Hkv, hk = h / G;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  T* o = out + (b * H + h) * D;
  const int64_t pos = positions[b];
  if (pos < 0 || pos >= Smax) {  // idle row: the whole block leaves before any barrier
    for (int64_t d = tid; d < D; d += blockDim.x) tg_store(o + d, 0.0f);
    return;
  }

  const int64_t half = D / 2;
  const T* row = qkv + b * (H + 2 * Hkv) * D;
  const T* qh = row + h * D;
  const T* kh = row + (H + hk) * D;
  const T* vh = row + (H + Hkv + hk) * D;
  const float* cp = cos + pos * half;
  const float* sp = sin + pos * half;
  const int64_t head = (b * Hkv + hk) * Smax * D;
  const bool writer = h % G == 0;
  for (int64_t i = tid; i < half; i += blockDim.x) {
    const float c = cp[i], s = sp[i];
    const float q1 = tg_load(qh + i), q2 = tg_load(qh + half + i);
    q_s[i] = round_to<T>(__fadd_rn(__fmul_rn(q1, c), -__fmul_rn(q2, s)));
    q_s[half + i] = round_to<T>(__fadd_rn(__fmul_rn(q1, s), __fmul_rn(q2, c)));
    const float k1 = tg_load(kh + i), k2 = tg_load(kh + half + i);
    const float y1 = __fadd_rn(__fmul_rn(k1, c), -__fmul_rn(k2, s));
    const float y2 = __fadd_rn(__fmul_rn(k1, s), __fmul_rn(k2, c));
    k_s[i] = round_to<T>(y1);
    k_s[half + i] = round_to<T>(y2);
    if (writer) {
      tg_store(kc + head + pos * D + i, y1);
      tg_store(kc + head + pos * D + half + i, y2);
    }
  }
  for (int64_t d = tid; d < D; d += blockDim.x) {
    v_s[d] = tg_load(vh + d);
    if (writer) vc[head + pos * D + d] = vh[d];
  }
  __syncthreads();

  float qr[kDpl], acc[kDpl];
  for (int c = 0; c < kDpl; ++c) {
    const int64_t d = lane + 32 * c;
    qr[c] = d < D ? q_s[d] : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const T* kb = kc + head;
  const T* vb = vc + head;
  for (int64_t j = warp; j <= pos; j += kWarps) {
    float kv[kDpl], vv[kDpl];
    if (j == pos) {  // this block's own copy of the new key and value
      for (int c = 0; c < kDpl; ++c) {
        const int64_t d = lane + 32 * c;
        kv[c] = d < D ? k_s[d] : 0.0f;
        vv[c] = d < D ? v_s[d] : 0.0f;
      }
    } else {
      for (int c = 0; c < kDpl; ++c) {
        const int64_t d = lane + 32 * c;
        kv[c] = d < D ? tg_load(kb + j * D + d) : 0.0f;
        vv[c] = d < D ? tg_load(vb + j * D + d) : 0.0f;
      }
    }
    float dot = 0.0f;
    for (int c = 0; c < kDpl; ++c) dot += qr[c] * kv[c];
    const float sc = tg_warp_sum(dot) * scale;
    const float m_new = fmaxf(m, sc);
    const float base = m_new == -INFINITY ? 0.0f : m_new;  // all -inf so far: weights 0, not exp(NaN)
    const float alpha = expf(m - base), p = expf(sc - base);
    l = l * alpha + p;
    for (int c = 0; c < kDpl; ++c) acc[c] = acc[c] * alpha + p * vv[c];
    m = m_new;
  }
  for (int c = 0; c < kDpl; ++c) {
    const int64_t d = lane + 32 * c;
    if (d < D) acc_s[warp][d] = acc[c];
  }
  if (lane == 0) {
    m_s[warp] = m;
    l_s[warp] = l;
  }
  __syncthreads();
  float M = m_s[0];
  for (int w = 1; w < kWarps; ++w) M = fmaxf(M, m_s[w]);
  float wt[kWarps], L = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    wt[w] = m_s[w] == -INFINITY ? 0.0f : expf(m_s[w] - M);  // a warp without keys counts for nothing
    L += l_s[w] * wt[w];
  }
  const float inv = 1.0f / L;
  for (int64_t d = tid; d < D; d += blockDim.x) {
    float a = 0.0f;
    for (int w = 0; w < kWarps; ++w) a += acc_s[w][d] * wt[w];
    tg_store(o + d, a * inv);
  }
}

template <class T, int kDpl>
const char* launch(const void* qkv, void* kc, void* vc, const int64_t* positions, const float* cos, const float* sin,
                   void* out, int64_t B, int64_t H, int64_t Hkv, int64_t Smax, int64_t D, float scale, void* stream) {
  auto k = decode_attn_kernel<T, kDpl>;
  TG_LAUNCH(k, static_cast<unsigned>(B * H), kWarps * 32, 0, stream)
  (static_cast<const T*>(qkv), static_cast<T*>(kc), static_cast<T*>(vc), positions, cos, sin, static_cast<T*>(out), H,
   Hkv, Smax, D, scale);
  return tg_launch_error();
}

}  // namespace

const char* decode_attention_forward(DType dt, const void* qkv, void* k_cache, void* v_cache, const int64_t* positions,
                                     const float* cos, const float* sin, void* out, int64_t B, int64_t H,
                                     int64_t Hkv, int64_t Smax, int64_t D, float scale, void* stream) {
  if (B == 0 || H == 0) return nullptr;
  if (D <= 0 || D % 2 != 0 || D > kDecodeMaxHeadDim) return "decode_attention: head dim must be even and <= 256";
  if (B * H > 0x7fffffff) return "decode_attention: too many (row, head) pairs for one grid";
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (D <= 32) return launch<T, 1>(qkv, k_cache, v_cache, positions, cos, sin, out, B, H, Hkv, Smax, D, scale, stream);
    if (D <= 64) return launch<T, 2>(qkv, k_cache, v_cache, positions, cos, sin, out, B, H, Hkv, Smax, D, scale, stream);
    if (D <= 128) return launch<T, 4>(qkv, k_cache, v_cache, positions, cos, sin, out, B, H, Hkv, Smax, D, scale, stream);
    return launch<T, 8>(qkv, k_cache, v_cache, positions, cos, sin, out, B, H, Hkv, Smax, D, scale, stream);
  });
}

}  // namespace tinygpt::cuda
