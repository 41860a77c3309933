// Token sampling on the GPU: tinygpt::sample and tinygpt::sample_probs (semantics:
// tinygpt/ops/reference.py, sample_probs; the CPU op is csrc/ops/sample/cpu.cpp + kernel.h).
//
// One block of kThreads threads per row, one launch per call, no sort and no host sync. Per row:
//   1. row parameters (per-row tensors override the scalars) and the row's checks: a parameter
//      out of range gives the code kSampleCodeBadParam; the max m of the row and its first index
//      (a block reduction of (value, index) pairs), with NaN / +inf (kSampleCodeBadValue) and an
//      all -inf row (kSampleCodeAllNegInf). These codes are written instead of a token id.
//   2. temperature 0 (or V = 1): the first index holding m, like torch.argmax.
//   3. e_i = exp((x_i - m) * s) in fp32, s = fp32(1 / T) (s = inf: e = [x == m]; s = 0:
//      e = [x > -inf]), recomputed from the logits in each pass (e_max is exactly 1).
//   4. Thresholds on e (kept: e >= t), each by a radix select over the float bits of e
//      (non-negative floats order like their bits): four passes of 8-bit digits, each a 256-bucket
//      shared-memory histogram of the e whose higher digits match the prefix found so far; one warp
//      then finds the bucket where the running total from the top reaches what is still needed.
//      - top_k (0 < k < V): histograms of counts; tau_k = the k-th largest e exactly.
//      - top_p (p < 1): histograms of masses of the e >= tau_k; tau_p = the largest e with
//        mass{e >= tau_p} >= p * mass{e >= tau_k}. The masses are fixed point: e * 2^F rounded
//        down to an integer, F = 62 - bits(V) (so a row's total fits 63 bits), summed with integer
//        atomics: exact, so the order of the atomics does not change them (deterministic), and
//        far finer than the fp32 e themselves (2^-46 for V = 50257).
//      - min_p: tau_min = the smallest float >= min_p.
//      t = max(tau_k, tau_p, tau_min): the same set as the CPU op's (top_p over what top_k kept,
//      min_p raising the bar).
//   5. The draw (sample): each thread takes a contiguous chunk of the row and sums its kept e in
//      double, in index order; a block-wide exclusive scan (fixed order: warp shuffles, then the
//      warp totals in order) gives each chunk's offset and the total Z. The chunk whose running sum
//      first exceeds u * Z walks its tokens: the id is the first kept index (e > 0) where the
//      running sum exceeds u * Z (inverse CDF in index order), the smallest over the chunks; the
//      last kept token with e > 0 if rounding leaves u * Z at or past the end (as the CPU op).
//      sample_probs writes e / Z over the kept tokens (the same Z), 0 elsewhere.
// Every sum has a fixed order, so a row's result depends only on its inputs.
#include "common/cuda_compat.h"
#include "ops/sample/cuda.h"

namespace tinygpt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kBuckets = 256;
constexpr unsigned kFull = 0xffffffffu;
constexpr int64_t kNoIndex = 0x7fffffffffffffffLL;

// ---- block reductions (every thread calls them; every thread gets the result) ----------------

struct Red {
  float f[kWarps];
  int64_t i[kWarps];
  unsigned long long u[kWarps];
  double d[kWarps];
};

// (max value, first index): the larger value, the smaller index among equal values.
__device__ __forceinline__ void argmax_step(float& v, int64_t& idx, float ov, int64_t oi) {
  if (ov > v || (ov == v && oi < idx)) {
    v = ov;
    idx = oi;
  }
}

__device__ void block_argmax(float& v, int64_t& idx, Red& r) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, v, o);
    const int64_t oi = __shfl_xor_sync(kFull, idx, o);
    argmax_step(v, idx, ov, oi);
  }
  if (lane == 0) {
    r.f[warp] = v;
    r.i[warp] = idx;
  }
  __syncthreads();
  v = r.f[0];
  idx = r.i[0];
  for (int w = 1; w < kWarps; ++w) argmax_step(v, idx, r.f[w], r.i[w]);
  __syncthreads();
}

// Warp butterfly, then one partial per warp through shared memory, combined in warp order.
template <class T, class Op>
__device__ T block_reduce(T v, T* partials, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int o = 16; o > 0; o >>= 1) v = op(v, static_cast<T>(__shfl_xor_sync(kFull, v, o)));
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  v = partials[0];
  for (int w = 1; w < kWarps; ++w) v = op(v, partials[w]);
  __syncthreads();
  return v;
}

__device__ unsigned long long block_sum_u64(unsigned long long v, Red& r) {
  return block_reduce(v, r.u, [](unsigned long long a, unsigned long long b) { return a + b; });
}
__device__ int64_t block_min_i64(int64_t v, Red& r) {
  return block_reduce(v, r.i, [](int64_t a, int64_t b) { return min(a, b); });
}
__device__ int64_t block_max_i64(int64_t v, Red& r) {
  return block_reduce(v, r.i, [](int64_t a, int64_t b) { return max(a, b); });
}

// Exclusive prefix sum of x over the threads in thread order, and the total, in a fixed order.
__device__ double block_exclusive_scan(double x, double* total, Red& r) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  double inc = x;
  for (int o = 1; o < 32; o <<= 1) {
    const double y = __shfl_up_sync(kFull, inc, o);
    if (lane >= o) inc += y;
  }
  double excl = __shfl_up_sync(kFull, inc, 1);
  if (lane == 0) excl = 0.0;
  if (lane == 31) r.d[warp] = inc;
  __syncthreads();
  double base = 0.0, tot = 0.0;
  for (int w = 0; w < kWarps; ++w) {
    if (w == warp) base = tot;
    tot += r.d[w];
  }
  __syncthreads();
  *total = tot;
  return base + excl;
}

// ---- the tempered e of a logit ------------------------------------------------------------------

struct Temper {
  float m, s;
  int kind;  // 0: exp((x - m) s); 1: s = inf, e = [x == m]; 2: s = 0, e = [x > -inf]
};

__device__ __forceinline__ float tempered(float x, const Temper& t) {
  if (t.kind == 1) return x == t.m ? 1.0f : 0.0f;
  if (t.kind == 2) return x > -INFINITY ? 1.0f : 0.0f;
  return expf((x - t.m) * t.s);
}

// ---- radix select over the bits of e ----------------------------------------------------------------

struct Hist {
  unsigned long long n[kBuckets];
  unsigned sel_digit;
  unsigned long long sel_need;
};

// One 8-bit level of a radix select: among the e >= lo whose higher digits equal prefix's, the
// digit d where the total (count, or fixed-point mass) from the top reaches `need`; prefix gets d,
// need what is still needed inside d's bucket.
template <class T>
__device__ void radix_level(const T* x, int64_t V, const Temper& tp, float lo, bool by_mass, double fscale, int level,
                            uint32_t& prefix, unsigned long long& need, Hist& h) {
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int shift = 24 - 8 * level;
  for (int b = tid; b < kBuckets; b += kThreads) h.n[b] = 0;
  __syncthreads();
  for (int64_t i = tid; i < V; i += kThreads) {
    const float e = tempered(tg_load(x + i), tp);
    if (!(e >= lo)) continue;
    const uint32_t bits = __float_as_uint(e);
    if (level > 0 && (bits >> (shift + 8)) != (prefix >> (shift + 8))) continue;
    const unsigned d = (bits >> shift) & 0xffu;
    atomicAdd(&h.n[d], by_mass ? static_cast<unsigned long long>(static_cast<double>(e) * fscale) : 1ull);
  }
  __syncthreads();
  if (warp == 0) {
    // lane l holds buckets [8 l, 8 l + 8); totals from the top by a suffix scan over the lanes
    unsigned long long own = 0;
    for (int b = 0; b < 8; ++b) own += h.n[8 * lane + b];
    unsigned long long inc = own;
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long y = __shfl_down_sync(kFull, inc, o);
      if (lane + o < 32) inc += y;
    }
    const unsigned long long above = inc - own;
    const unsigned hit = __ballot_sync(kFull, above < need && need <= inc);
    if (hit == 0) {  // not reached (the totals hold what is needed): keep the lowest bucket
      if (lane == 0) {
        h.sel_digit = 0;
        h.sel_need = need;
      }
    } else if (lane == __ffs(static_cast<int>(hit)) - 1) {
      unsigned long long a = above;
      int d = 8 * lane + 7;
      for (; d > 8 * lane && a + h.n[d] < need; --d) a += h.n[d];
      h.sel_digit = static_cast<unsigned>(d);
      h.sel_need = need - a;
    }
  }
  __syncthreads();
  prefix |= h.sel_digit << shift;
  need = h.sel_need;
  __syncthreads();
}

template <class T>
__device__ float radix_select(const T* x, int64_t V, const Temper& tp, float lo, bool by_mass, double fscale,
                              unsigned long long need, Hist& h) {
  uint32_t prefix = 0;
  for (int level = 0; level < 4; ++level) radix_level(x, V, tp, lo, by_mass, fscale, level, prefix, need, h);
  return __uint_as_float(prefix);
}

// The smallest float >= x (x in [0, 1]).
__device__ __forceinline__ float float_at_least(double x) {
  float f = static_cast<float>(x);
  if (static_cast<double>(f) < x) f = __uint_as_float(__float_as_uint(f) + 1u);
  return f;
}

// ---- the kernel ----------------------------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleArgs a) {
  __shared__ Red red;
  __shared__ Hist hist;
  const int64_t r = blockIdx.x, V = a.V;
  const int tid = threadIdx.x;
  const T* x = static_cast<const T*>(a.logits) + r * V;
  double* probs = a.probs ? a.probs + r * V : nullptr;

  // 1. parameters and checks (uniform over the block: leaving here skips every barrier together)
  const double temp = a.temperature ? a.temperature[r] : a.temperature_s;
  const int64_t top_k = a.top_k ? a.top_k[r] : a.top_k_s;
  const double top_p = a.top_p ? a.top_p[r] : a.top_p_s;
  const double min_p = a.min_p ? a.min_p[r] : a.min_p_s;
  const double u = a.uniform ? a.uniform[r] : 0.0;
  int64_t code = 0;
  if (!(temp >= 0.0) || top_k < 0 || !(top_p > 0.0 && top_p <= 1.0) || !(min_p >= 0.0 && min_p <= 1.0) ||
      !(u >= 0.0 && u < 1.0))
    code = kSampleCodeBadParam;

  float m = -INFINITY;
  int64_t first = kNoIndex;
  int64_t bad = 0;
  if (code == 0) {
    for (int64_t i = tid; i < V; i += kThreads) {
      const float v = tg_load(x + i);
      if (v != v || v == INFINITY) bad = 1;
      else if (v > m) m = v, first = i;  // strided in index order: the first maximum is kept
    }
    bad = block_max_i64(bad, red);
    block_argmax(m, first, red);
    if (bad) code = kSampleCodeBadValue;
    else if (m == -INFINITY) code = kSampleCodeAllNegInf;
  }
  if (a.status && tid == 0) a.status[r] = code;
  if (code != 0) {
    if (a.ids && tid == 0) a.ids[r] = code;
    if (probs)
      for (int64_t i = tid; i < V; i += kThreads) probs[i] = __longlong_as_double(0x7ff8000000000000LL);  // NaN
    return;
  }

  // 2. greedy
  if (temp == 0.0 || V == 1) {
    if (a.ids && tid == 0) a.ids[r] = first;
    if (probs)
      for (int64_t i = tid; i < V; i += kThreads) probs[i] = i == first ? 1.0 : 0.0;
    return;
  }

  // 3. tempering
  Temper tp;
  tp.m = m;
  tp.s = static_cast<float>(1.0 / temp);
  tp.kind = tp.s == INFINITY ? 1 : tp.s == 0.0f ? 2 : 0;
  int bits_v = 0;
  while (bits_v < 63 && (V >> bits_v) != 0) ++bits_v;
  const double fscale = static_cast<double>(1ull << (62 - bits_v));

  // 4. thresholds
  float t = 0.0f;
  if (top_k > 0 && top_k < V) t = radix_select(x, V, tp, 0.0f, false, fscale, static_cast<unsigned long long>(top_k), hist);
  if (top_p < 1.0) {
    unsigned long long zk = 0;
    for (int64_t i = tid; i < V; i += kThreads) {
      const float e = tempered(tg_load(x + i), tp);
      if (e >= t) zk += static_cast<unsigned long long>(static_cast<double>(e) * fscale);
    }
    zk = block_sum_u64(zk, red);
    const double want = ceil(top_p * static_cast<double>(zk));
    unsigned long long need = want >= static_cast<double>(zk) ? zk : static_cast<unsigned long long>(want);
    if (need == 0) need = 1;
    t = fmaxf(t, radix_select(x, V, tp, t, true, fscale, need, hist));
  }
  if (min_p > 0.0) t = fmaxf(t, float_at_least(min_p));

  // 5. the kept mass by chunks, their offsets and the total
  const int64_t chunk = (V + kThreads - 1) / kThreads;
  const int64_t c0 = min(V, tid * chunk), c1 = min(V, c0 + chunk);
  double own = 0.0;
  for (int64_t i = c0; i < c1; ++i) {
    const float e = tempered(tg_load(x + i), tp);
    if (e >= t) own += e;
  }
  double z;
  const double off = block_exclusive_scan(own, &z, red);
  if (probs) {
    for (int64_t i = tid; i < V; i += kThreads) {
      const float e = tempered(tg_load(x + i), tp);
      probs[i] = e >= t ? static_cast<double>(e) / z : 0.0;
    }
    return;
  }
  const double target = u * z;
  int64_t id = kNoIndex;
  if (off + own > target) {
    double run = 0.0;
    for (int64_t i = c0; i < c1; ++i) {
      const float e = tempered(tg_load(x + i), tp);
      if (e >= t && e > 0.0f) {
        run += e;
        if (off + run > target) {
          id = i;
          break;
        }
      }
    }
  }
  id = block_min_i64(id, red);
  if (id == kNoIndex) {  // rounding left u * Z at or past the end: the last kept token with e > 0
    int64_t last = 0;
    for (int64_t i = tid; i < V; i += kThreads) {
      const float e = tempered(tg_load(x + i), tp);
      if (e >= t && e > 0.0f) last = i;
    }
    id = block_max_i64(last, red);
  }
  if (tid == 0) a.ids[r] = id;
}

}  // namespace

const char* sample_launch(DType dt, const SampleArgs& a, void* stream) {
  if (a.B == 0) return nullptr;
  if (a.B > 0x7fffffff) return "sample: too many rows for one grid";
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto k = sample_kernel<T>;
    TG_LAUNCH(k, static_cast<unsigned>(a.B), kThreads, 0, stream)(a);
    return tg_launch_error();
  });
}

}  // namespace tinygpt::cuda
