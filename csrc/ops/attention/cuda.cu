// Fused attention on the GPU (semantics: tinygpt/ops/reference.py, csrc/ops/attention/kernel.h):
//   out = softmax(scale q k^T, masked) v,  lse = log(sum(exp(scale q k^T))) per query row,
// causal: query i sees keys j <= i + S - T. Grouped-query: head h reads key/value head h / (H/Hkv).
//
// Every kernel gives each warp 16 rows of the block's tile, so that everything per row (softmax,
// masking, rescaling) is warp-local; block barriers only guard the shared tiles loaded from global
// memory. Tile products go through warp_gemm: WMMA 16x16x16 with fp32 accumulators for bf16/fp16,
// plain FMA loops for fp32 (fp32 accuracy). Accumulators (O, dQ, dK, dV) live in shared memory as
// fp32, since the fragment layout is opaque.
//  - forward: block = (BM queries, head, batch); loop over 64-key tiles (under causal, only tiles
//    with a visible key): S = Q K^T, online softmax (running max m, sum l), O = alpha O + P V;
//    finally out = O / l, lse = m + log l (the softmax runs in base 2: exp2f of log2(e)-scaled scores).
//  - backward: dsum = rowsum(dO * O); dK/dV: block = (BM keys, kv head, batch) looping over the
//    query heads of its group and their 64-query tiles that see the keys: S^T = K Q^T,
//    P^T = exp(scale S^T - lse), dP^T = V dO^T, dS^T = P^T (dP^T - dsum), dV += P^T dO,
//    dK += scale dS^T Q; dQ: block = (BM queries, head, batch) over key tiles, recomputing P and
//    dS, dQ += scale dS K. No atomics: every output element has one writer (deterministic).
#include "ops/attention/cuda.h"

#include "common/cuda_compat.h"

namespace tinygpt::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr size_t cmax(size_t a, size_t b) { return a > b ? a : b; }
constexpr size_t rnd32(size_t b) { return (b + 31) / 32 * 32; }

// Tiling per element type: fp32 uses 2 warps (its tiles are twice the bytes, and all kernels must
// fit sm_80's 163 KB of shared memory at D = 128), 16-bit types 4 warps.
template <class T>
struct Cfg {
  static constexpr bool kF32 = std::is_same_v<T, float>;
  static constexpr int NW = kF32 ? 2 : 4;     // warps per block
  static constexpr int NT = NW * 32;          // threads per block
  static constexpr int BM = 16 * NW;          // rows the block owns (queries; keys in dK/dV)
  static constexpr int BN = 64;               // the inner tile (keys; queries in dK/dV)
  static constexpr int PAD = kF32 ? 4 : 8;    // row padding of T tiles: strides of 16-byte multiples
  static constexpr int LDS = BN + 4;          // fp32 score tile stride
  static constexpr int LDP = kF32 ? LDS : BN + 8;  // stride of P / dS (type T), written over the scores
};

// Shared memory layout of the kernels (byte offsets of 32-byte aligned regions).
template <class T, int D>
struct Layout {
  using C = Cfg<T>;
  static constexpr int LDT = D + C::PAD;  // T tiles (Q, K, V, dO)
  static constexpr int LDO = D + 4;       // fp32 accumulators (O, dQ, dK, dV)
  static constexpr size_t tileT(int rows) { return rnd32(sizeof(T) * rows * LDT); }
  static constexpr size_t tileF(int rows) { return rnd32(sizeof(float) * rows * LDO); }
  static constexpr size_t tM = tileT(C::BM), tN = tileT(C::BN), fM = tileF(C::BM);  // (for device code)
  // per warp: 16 x LDS fp32 scores, later one (fwd, dQ) or two (dK/dV) 16 x LDP tiles of type T
  static constexpr size_t wreg1 = rnd32(cmax(16 * C::LDS * sizeof(float), 16 * C::LDP * sizeof(T)));
  static constexpr size_t wreg2 = rnd32(cmax(16 * C::LDS * sizeof(float), 2 * 16 * C::LDP * sizeof(T)));
  // forward: Q (BM) | K, V (BN) | scores (NW) | O (BM) | 1/l (BM)
  static constexpr size_t fwd = tileT(C::BM) + 2 * tileT(C::BN) + C::NW * wreg1 + tileF(C::BM) + rnd32(4 * C::BM);
  // dQ: Q, dO (BM) | K, V (BN) | dQ (BM) | scores (NW)
  static constexpr size_t dq = 2 * tileT(C::BM) + 2 * tileT(C::BN) + tileF(C::BM) + C::NW * wreg1;
  // dK/dV: K, V (BM) | Q, dO (BN) | dK, dV (BM) | scores (NW) | lse, dsum (BN)
  static constexpr size_t dkdv =
      2 * tileT(C::BM) + 2 * tileT(C::BN) + 2 * tileF(C::BM) + C::NW * wreg2 + rnd32(8 * C::BN);
};

constexpr size_t kSmemSlack = 32;  // the kernels align the dynamic shared memory base to 32 bytes
constexpr size_t kSmemSm80 = 163 * 1024;  // the opt-in limit per block on sm_80 (sm_90: 227 KB)

template <class T, int D>
constexpr bool fits_sm80() {
  using L = Layout<T, D>;
  return cmax(cmax(L::fwd, L::dq), L::dkdv) + kSmemSlack <= kSmemSm80;
}
static_assert(fits_sm80<float, 128>() && fits_sm80<bf16, 128>() && fits_sm80<fp16, 128>(),
              "attention: shared memory per block over sm_80's limit");

// The dynamic shared memory, 32-byte aligned (WMMA pointers must be).
__device__ __forceinline__ unsigned char* smem_base() {
  unsigned char* p = tg_dynamic_smem<unsigned char>();
  const uintptr_t mis = reinterpret_cast<uintptr_t>(p) % 32;
  return mis ? p + (32 - mis) : p;
}

// Softmax in base 2 (exp2f is one instruction on the GPU): scores times scale * log2(e).
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float neg_inf() { return __int_as_float(static_cast<int>(0xff800000u)); }

// Rows [0, valid) of a ROWS x D tile from global `src` (rows contiguous, D apart) into shared `dst`
// (stride ld), rows [valid, ROWS) zero. 16-byte copies when `aligned`.
template <class T, int D, int ROWS, int NT>
__device__ __forceinline__ void load_tile(T* dst, int ld, const T* src, int valid, bool aligned) {
  if (aligned) {
    constexpr int VEC = 16 / sizeof(T), CPR = D / VEC;
#pragma unroll 4
    for (int i = threadIdx.x; i < ROWS * CPR; i += NT) {
      const int r = i / CPR, c = (i % CPR) * VEC;
      float4 val = make_float4(0.f, 0.f, 0.f, 0.f);
      if (r < valid) val = *reinterpret_cast<const float4*>(src + static_cast<int64_t>(r) * D + c);
      *reinterpret_cast<float4*>(dst + r * ld + c) = val;
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * D; i += NT) {
      const int r = i / D, c = i % D;
      dst[r * ld + c] = r < valid ? src[static_cast<int64_t>(r) * D + c] : tg_from_float<T>(0.f);
    }
  }
}

// Zeroes a rows x ld fp32 region.
template <int NT>
__device__ __forceinline__ void zero_block(float* p, int n) {
  for (int i = threadIdx.x; i < n; i += NT) p[i] = 0.f;
}

// One warp: C[16 x N] (+)= A[16 x K] B[K x N]. A is row-major (A[m][k] = A[m * lda + k]); B is
// row-major (B[k][n] = B[k * ldb + n]) or, with BCOL, column-major (B[k][n] = B[n * ldb + k]);
// C is fp32 row-major in shared memory. Ends with __syncwarp: C is readable by every lane.
template <class T, int N, int K, bool BCOL>
__device__ __forceinline__ void warp_gemm(const T* A, int lda, const T* B, int ldb, float* C, int ldc, bool acc) {
  if constexpr (std::is_same_v<T, float>) {
    // lane owns rows r0 + 4i (i < 4) and columns c0 + 8j (j < N / 8)
    constexpr int NJ = N / 8;
    const int lane = threadIdx.x % 32, r0 = lane & 3, c0 = lane >> 2;
    float c[4][NJ];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) c[i][j] = acc ? C[(r0 + 4 * i) * ldc + c0 + 8 * j] : 0.f;
#pragma unroll 4
    for (int kk = 0; kk < K; ++kk) {
      float a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = A[(r0 + 4 * i) * lda + kk];
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const float b = BCOL ? B[(c0 + 8 * j) * ldb + kk] : B[kk * ldb + c0 + 8 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i) c[i][j] += a[i] * b;
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) C[(r0 + 4 * i) * ldc + c0 + 8 * j] = c[i][j];
  } else {
    using BL = std::conditional_t<BCOL, wmma::col_major, wmma::row_major>;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[K / 16];
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) wmma::load_matrix_sync(a[kk], A + kk * 16, lda);
#pragma unroll
    for (int n0 = 0; n0 < N; n0 += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      if (acc)
        wmma::load_matrix_sync(c, C + n0, ldc, wmma::mem_row_major);
      else
        wmma::fill_fragment(c, 0.0f);
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BL> b;
        wmma::load_matrix_sync(b, BCOL ? B + n0 * ldb + kk * 16 : B + kk * 16 * ldb + n0, ldb);
        wmma::mma_sync(c, a[kk], b, c);
      }
      wmma::store_matrix_sync(C + n0, c, ldc, wmma::mem_row_major);
    }
  }
  __syncwarp();
}

// Writes a warp's `rows` x D fp32 rows (stride LDO) as T, each row times rowmul[r] (or `mul`).
template <class T, int D, int LDO>
__device__ __forceinline__ void warp_store_rows(T* dst, const float* src, int rows, const float* rowmul, float mul) {
  const int lane = threadIdx.x % 32;
  for (int i = lane; i < rows * D; i += 32) {
    const int r = i / D, d = i % D;
    tg_store(dst + i, src[r * LDO + d] * (rowmul ? rowmul[r] : mul));
  }
}

// Whether the first n rows (D columns, stride ld) of a shared tile hold a NaN or an infinity,
// answered to every lane of the warp: x - x is 0 for every finite x.
template <class T, int D>
__device__ __forceinline__ bool warp_any_nonfinite(const T* tile, int ld, int n) {
  const int lane = threadIdx.x % 32;
  bool bad = false;
  for (int i = lane; i < n * D; i += 32) {
    const float x = tg_load(tile + (i / D) * ld + i % D);
    bad |= !(x - x == 0.f);
  }
  return __ballot_sync(0xffffffffu, bad) != 0u;
}

// O[r][d] += sum_{lo <= c < hi} P[r][c] X[c][d] over the lane pair (r, hc)'s columns d: the exact
// product over what row r sees, for a tile that masking cuts when X holds a NaN or an infinity.
// warp_gemm would also add 0 x X[c] for the masked c, which is NaN there: a value a row cannot
// see must not reach it. Rare (non-finite data), so plain loops.
template <class T, int D>
__device__ __forceinline__ void warp_rows_seen(const T* P, int ldp, const T* X, int ldx, float* O, int ldo, int r,
                                               int hc, int lo, int hi) {
  for (int d = hc; d < D; d += 2) {
    float acc = 0.f;
    for (int c = lo; c < hi; ++c) acc += tg_load(P + r * ldp + c) * tg_load(X + c * ldx + d);
    O[r * ldo + d] += acc;
  }
  __syncwarp();
}

// ---- forward --------------------------------------------------------------------------------

template <class T, int D, bool CAUSAL>
__global__ void __launch_bounds__(Cfg<T>::NT)
    attn_fwd_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ out,
                    float* __restrict__ lse, int H, int Hkv, int T_, int S, float scale, bool aligned) {
  using C = Cfg<T>;
  using L = Layout<T, D>;
  constexpr int LDT = L::LDT, LDO = L::LDO, BM = C::BM, BN = C::BN, NT = C::NT;
  unsigned char* sm = smem_base();
  T* Qs = reinterpret_cast<T*>(sm);
  T* Ks = reinterpret_cast<T*>(sm + L::tM);
  T* Vs = reinterpret_cast<T*>(sm + L::tM + L::tN);
  unsigned char* wbase = sm + L::tM + 2 * L::tN;
  float* Os = reinterpret_cast<float*>(wbase + C::NW * L::wreg1);
  float* inv_l = reinterpret_cast<float*>(wbase + C::NW * L::wreg1 + L::fM);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // under causal masking the last query tiles see the most keys: start them first
  const int qt = CAUSAL ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  const int q0 = qt * BM, h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t qrow0 = (static_cast<int64_t>(b) * H + h) * T_ + q0;  // first query row (global)
  const int64_t krow0 = (static_cast<int64_t>(b) * Hkv + hk) * S;
  const int qrows = min(BM, T_ - q0);
  const int diag = S - T_;

  load_tile<T, D, BM, NT>(Qs, LDT, q + qrow0 * D, qrows, aligned);
  zero_block<NT>(Os, BM * LDO);

  // keys any row of the block sees
  const int kend = CAUSAL ? min(S, q0 + qrows + diag) : S;
  const int ntiles = (kend + BN - 1) / BN;

  // lane pair (r, hc) owns row r of the warp's 16, columns hc, hc + 2, ...
  const int r = lane >> 1, hc = lane & 1, row = 16 * warp + r, qi = q0 + row;
  const int klim = CAUSAL ? min(S, qi + diag + 1) : S;  // keys [0, klim) visible to this row
  float* Sw = reinterpret_cast<float*>(wbase + warp * L::wreg1);
  T* Pw = reinterpret_cast<T*>(Sw);
  float* Ow = Os + 16 * warp * LDO;
  const T* Qw = Qs + 16 * warp * LDT;
  const float sl2 = scale * kLog2e;
  float m = neg_inf(), l = 0.f;  // running max (base-2 scores) and sum of the row

  for (int t = 0; t < ntiles; ++t) {
    const int j0 = t * BN;
    __syncthreads();  // the previous tiles are no longer read
    load_tile<T, D, BN, NT>(Ks, LDT, k + (krow0 + j0) * D, min(BN, S - j0), aligned);
    load_tile<T, D, BN, NT>(Vs, LDT, v + (krow0 + j0) * D, min(BN, S - j0), aligned);
    __syncthreads();
    warp_gemm<T, BN, D, true>(Qw, LDT, Ks, LDT, Sw, C::LDS, false);

    float p[BN / 2];
    float mx = neg_inf();
#pragma unroll
    for (int j = 0; j < BN / 2; ++j) {
      const int c = 2 * j + hc;
      const float s = j0 + c < klim ? Sw[r * C::LDS + c] * sl2 : neg_inf();
      p[j] = s;
      mx = fmaxf(mx, s);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float mnew = fmaxf(m, mx);
    const float base = mnew == neg_inf() ? 0.f : mnew;  // a row with no visible key yet
    const float alpha = exp2f(m - base);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < BN / 2; ++j) {
      p[j] = exp2f(p[j] - base);
      sum += p[j];
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = mnew;
    __syncwarp();  // every lane has read its scores before P overwrites them
#pragma unroll
    for (int j = 0; j < BN / 2; ++j) Pw[r * C::LDP + 2 * j + hc] = tg_from_float<T>(p[j]);
#pragma unroll 4
    for (int d = hc; d < D; d += 2) Ow[r * LDO + d] *= alpha;
    __syncwarp();
    const bool cut = CAUSAL && q0 + diag + 1 < min(S, j0 + BN);  // masking cuts this tile for some row
    if (cut && warp_any_nonfinite<T, D>(Vs, LDT, min(BN, S - j0))) {
      warp_rows_seen<T, D>(Pw, C::LDP, Vs, LDT, Ow, LDO, r, hc, 0, max(0, min(BN, klim - j0)));
    } else {
      warp_gemm<T, D, BN, false>(Pw, C::LDP, Vs, LDT, Ow, LDO, true);
    }
  }

  if (hc == 0) {
    inv_l[row] = 1.f / l;
    if (qi < T_) lse[qrow0 + row] = (m + log2f(l)) * kLn2;
  }
  __syncwarp();
  const int wrows = min(16, max(0, qrows - 16 * warp));
  warp_store_rows<T, D, LDO>(out + (qrow0 + 16 * warp) * D, Ow, wrows, inv_l + 16 * warp, 1.f);
}

// ---- backward ---------------------------------------------------------------------------------

// dsum[row] = sum_d grad_out[row][d] * out[row][d]; one warp per row.
template <class T>
__global__ void __launch_bounds__(128)
    attn_bwd_dsum_kernel(const T* __restrict__ dout, const T* __restrict__ out, float* __restrict__ dsum,
                         int64_t rows, int D) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * 4 + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together; no block barrier
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += tg_load(dout + row * D + d) * tg_load(out + row * D + d);
  s = tg_warp_sum(s);
  if (lane == 0) dsum[row] = s;
}

template <class T, int D, bool CAUSAL>
__global__ void __launch_bounds__(Cfg<T>::NT)
    attn_bwd_dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                       T* __restrict__ dq, int H, int Hkv, int T_, int S, float scale, bool aligned) {
  using C = Cfg<T>;
  using L = Layout<T, D>;
  constexpr int LDT = L::LDT, LDO = L::LDO, BM = C::BM, BN = C::BN, NT = C::NT;
  unsigned char* sm = smem_base();
  T* Qs = reinterpret_cast<T*>(sm);
  T* dOs = reinterpret_cast<T*>(sm + L::tM);
  T* Ks = reinterpret_cast<T*>(sm + 2 * L::tM);
  T* Vs = reinterpret_cast<T*>(sm + 2 * L::tM + L::tN);
  float* dQs = reinterpret_cast<float*>(sm + 2 * L::tM + 2 * L::tN);
  unsigned char* wbase = sm + 2 * L::tM + 2 * L::tN + L::fM;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // under causal masking the last query tiles see the most keys: start them first
  const int qt = CAUSAL ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  const int q0 = qt * BM, h = blockIdx.y, b = blockIdx.z, hk = h / (H / Hkv);
  const int64_t qrow0 = (static_cast<int64_t>(b) * H + h) * T_ + q0;
  const int64_t krow0 = (static_cast<int64_t>(b) * Hkv + hk) * S;
  const int qrows = min(BM, T_ - q0);
  const int diag = S - T_;

  load_tile<T, D, BM, NT>(Qs, LDT, q + qrow0 * D, qrows, aligned);
  load_tile<T, D, BM, NT>(dOs, LDT, dout + qrow0 * D, qrows, aligned);
  zero_block<NT>(dQs, BM * LDO);

  const int kend = CAUSAL ? min(S, q0 + qrows + diag) : S;
  const int ntiles = (kend + BN - 1) / BN;

  const int r = lane >> 1, hc = lane & 1, row = 16 * warp + r, qi = q0 + row;
  const bool live = qi < T_;
  const int klim = !live ? 0 : CAUSAL ? min(S, qi + diag + 1) : S;
  const float li = live ? lse[qrow0 + row] * kLog2e : 0.f, di = live ? dsum[qrow0 + row] : 0.f;
  const float sl2 = scale * kLog2e;
  float* Sw = reinterpret_cast<float*>(wbase + warp * L::wreg1);
  T* dSw = reinterpret_cast<T*>(Sw);
  float* dQw = dQs + 16 * warp * LDO;
  const T* Qw = Qs + 16 * warp * LDT;
  const T* dOw = dOs + 16 * warp * LDT;

  for (int t = 0; t < ntiles; ++t) {
    const int j0 = t * BN;
    __syncthreads();
    load_tile<T, D, BN, NT>(Ks, LDT, k + (krow0 + j0) * D, min(BN, S - j0), aligned);
    load_tile<T, D, BN, NT>(Vs, LDT, v + (krow0 + j0) * D, min(BN, S - j0), aligned);
    __syncthreads();
    warp_gemm<T, BN, D, true>(Qw, LDT, Ks, LDT, Sw, C::LDS, false);  // S = Q K^T
    float p[BN / 2];
#pragma unroll
    for (int j = 0; j < BN / 2; ++j) {
      const int c = 2 * j + hc;
      p[j] = j0 + c < klim ? exp2f(Sw[r * C::LDS + c] * sl2 - li) : 0.f;
    }
    __syncwarp();
    warp_gemm<T, BN, D, true>(dOw, LDT, Vs, LDT, Sw, C::LDS, false);  // dP = dO V^T
#pragma unroll
    for (int j = 0; j < BN / 2; ++j)  // dS; a masked one is 0 even where dP is NaN
      p[j] = j0 + 2 * j + hc < klim ? p[j] * (Sw[r * C::LDS + 2 * j + hc] - di) : 0.f;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < BN / 2; ++j) dSw[r * C::LDP + 2 * j + hc] = tg_from_float<T>(p[j]);
    __syncwarp();
    const bool cut = CAUSAL && q0 + diag + 1 < min(S, j0 + BN);
    if (cut && warp_any_nonfinite<T, D>(Ks, LDT, min(BN, S - j0))) {
      warp_rows_seen<T, D>(dSw, C::LDP, Ks, LDT, dQw, LDO, r, hc, 0, max(0, min(BN, klim - j0)));
    } else {
      warp_gemm<T, D, BN, false>(dSw, C::LDP, Ks, LDT, dQw, LDO, true);  // dQ += dS K
    }
  }
  __syncthreads();
  const int wrows = min(16, max(0, qrows - 16 * warp));
  warp_store_rows<T, D, LDO>(dq + (qrow0 + 16 * warp) * D, dQw, wrows, nullptr, scale);
}

template <class T, int D, bool CAUSAL>
__global__ void __launch_bounds__(Cfg<T>::NT)
    attn_bwd_dkdv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                         const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum,
                         T* __restrict__ dk, T* __restrict__ dv, int H, int Hkv, int T_, int S, float scale,
                         bool aligned) {
  using C = Cfg<T>;
  using L = Layout<T, D>;
  constexpr int LDT = L::LDT, LDO = L::LDO, BM = C::BM, BN = C::BN, NT = C::NT;
  unsigned char* sm = smem_base();
  size_t off = 0;
  T* Ks = reinterpret_cast<T*>(sm + off);
  off += L::tM;
  T* Vs = reinterpret_cast<T*>(sm + off);
  off += L::tM;
  T* Qs = reinterpret_cast<T*>(sm + off);
  off += L::tN;
  T* dOs = reinterpret_cast<T*>(sm + off);
  off += L::tN;
  float* dKs = reinterpret_cast<float*>(sm + off);
  off += L::fM;
  float* dVs = reinterpret_cast<float*>(sm + off);
  off += L::fM;
  unsigned char* wbase = sm + off;
  off += C::NW * L::wreg2;
  float* Ls = reinterpret_cast<float*>(sm + off);
  float* Ds = Ls + BN;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int j0 = blockIdx.x * BM, hk = blockIdx.y, b = blockIdx.z, Hg = H / Hkv;
  const int64_t krow0 = (static_cast<int64_t>(b) * Hkv + hk) * S + j0;
  const int krows = min(BM, S - j0);
  const int diag = S - T_;

  load_tile<T, D, BM, NT>(Ks, LDT, k + krow0 * D, krows, aligned);
  load_tile<T, D, BM, NT>(Vs, LDT, v + krow0 * D, krows, aligned);
  zero_block<NT>(dKs, BM * LDO);
  zero_block<NT>(dVs, BM * LDO);

  // the first query that sees key j0 under causal masking: i >= j0 - diag
  const int qstart = CAUSAL ? max(0, j0 - diag) / BN * BN : 0;

  // lane pair (r, hc) owns key row r of the warp's 16, query columns hc, hc + 2, ...
  const int r = lane >> 1, hc = lane & 1, kj = j0 + 16 * warp + r;
  const float sl2 = scale * kLog2e;
  float* Sw = reinterpret_cast<float*>(wbase + warp * L::wreg2);
  T* Pw = reinterpret_cast<T*>(Sw);
  T* dSw = Pw + 16 * C::LDP;
  const T* Kw = Ks + 16 * warp * LDT;
  const T* Vw = Vs + 16 * warp * LDT;
  float* dKw = dKs + 16 * warp * LDO;
  float* dVw = dVs + 16 * warp * LDO;

  for (int h = hk * Hg; h < (hk + 1) * Hg; ++h) {
    const int64_t qhead0 = (static_cast<int64_t>(b) * H + h) * T_;
    for (int i0 = qstart; i0 < T_; i0 += BN) {
      const int qrows = min(BN, T_ - i0);
      __syncthreads();
      load_tile<T, D, BN, NT>(Qs, LDT, q + (qhead0 + i0) * D, qrows, aligned);
      load_tile<T, D, BN, NT>(dOs, LDT, dout + (qhead0 + i0) * D, qrows, aligned);
      for (int i = threadIdx.x; i < BN; i += NT) {
        Ls[i] = i < qrows ? lse[qhead0 + i0 + i] * kLog2e : 0.f;  // base 2
        Ds[i] = i < qrows ? dsum[qhead0 + i0 + i] : 0.f;
      }
      __syncthreads();
      warp_gemm<T, BN, D, true>(Kw, LDT, Qs, LDT, Sw, C::LDS, false);  // S^T = K Q^T
      float p[BN / 2];
#pragma unroll
      for (int j = 0; j < BN / 2; ++j) {
        const int c = 2 * j + hc, qi = i0 + c;
        const bool vis = kj < S && c < qrows && (!CAUSAL || kj <= qi + diag);
        p[j] = vis ? exp2f(Sw[r * C::LDS + c] * sl2 - Ls[c]) : 0.f;
      }
      __syncwarp();
      warp_gemm<T, BN, D, true>(Vw, LDT, dOs, LDT, Sw, C::LDS, false);  // dP^T = V dO^T
      float ds[BN / 2];
#pragma unroll
      for (int j = 0; j < BN / 2; ++j) {
        const int c = 2 * j + hc;
        const bool vis = kj < S && c < qrows && (!CAUSAL || kj <= i0 + c + diag);
        ds[j] = vis ? p[j] * (Sw[r * C::LDS + c] - Ds[c]) : 0.f;  // 0 even where dP is NaN
      }
      __syncwarp();
#pragma unroll
      for (int j = 0; j < BN / 2; ++j) {
        Pw[r * C::LDP + 2 * j + hc] = tg_from_float<T>(p[j]);
        dSw[r * C::LDP + 2 * j + hc] = tg_from_float<T>(ds[j]);
      }
      __syncwarp();
      // the queries key row r sees in this tile: [first, qrows)
      const int first = CAUSAL ? max(0, min(qrows, kj - diag - i0)) : 0;
      const bool cut = CAUSAL && i0 + diag < min(S, j0 + krows) - 1;  // some query misses some key
      if (cut && warp_any_nonfinite<T, D>(dOs, LDT, qrows)) {
        warp_rows_seen<T, D>(Pw, C::LDP, dOs, LDT, dVw, LDO, r, hc, first, kj < S ? qrows : first);
      } else {
        warp_gemm<T, D, BN, false>(Pw, C::LDP, dOs, LDT, dVw, LDO, true);  // dV += P^T dO
      }
      if (cut && warp_any_nonfinite<T, D>(Qs, LDT, qrows)) {
        warp_rows_seen<T, D>(dSw, C::LDP, Qs, LDT, dKw, LDO, r, hc, first, kj < S ? qrows : first);
      } else {
        warp_gemm<T, D, BN, false>(dSw, C::LDP, Qs, LDT, dKw, LDO, true);  // dK += dS^T Q
      }
    }
  }
  __syncthreads();  // the zeroed accumulators are visible even if no query tile was visited
  const int wrows = min(16, max(0, krows - 16 * warp));
  warp_store_rows<T, D, LDO>(dk + (krow0 + 16 * warp) * D, dKw, wrows, nullptr, scale);
  warp_store_rows<T, D, LDO>(dv + (krow0 + 16 * warp) * D, dVw, wrows, nullptr, 1.f);
}

// ---- launchers ----------------------------------------------------------------------------------

// Calls fn(integral_constant<int, D>, bool_constant<causal>) for the supported head dims.
template <class F>
const char* dispatch_dim_causal(int64_t D, bool causal, F&& fn) {
  auto go = [&](auto d) -> const char* {
    return causal ? fn(d, std::true_type{}) : fn(d, std::false_type{});
  };
  switch (D) {
    case 32: return go(std::integral_constant<int, 32>{});
    case 64: return go(std::integral_constant<int, 64>{});
    case 80: return go(std::integral_constant<int, 80>{});
    case 96: return go(std::integral_constant<int, 96>{});
    case 128: return go(std::integral_constant<int, 128>{});
  }
  return "attention: head dim must be 32, 64, 80, 96 or 128";
}

template <class K>
const char* set_smem(K kernel, size_t bytes, const char* what) {
  if (bytes <= 48 * 1024) return nullptr;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear it
    return what;
  }
  return nullptr;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The forward, dK/dV and dQ kernels: one block per tile of BM rows (queries or keys), head and batch row.
template <class C, class K, class... Args>
const char* launch_tiles(K kern, size_t smem, const char* what, int64_t rows, int64_t heads, int64_t B, void* stream,
                         Args... args) {
  if (const char* e = set_smem(kern, smem, what)) return e;
  const dim3 grid(static_cast<unsigned>((rows + C::BM - 1) / C::BM), static_cast<unsigned>(heads),
                  static_cast<unsigned>(B));
  TG_LAUNCH(kern, grid, C::NT, smem, stream)(args...);
  return tg_launch_error();
}

}  // namespace

bool attention_head_dim_supported(int64_t D) { return D == 32 || D == 64 || D == 80 || D == 96 || D == 128; }

const char* attention_forward(DType dt, const void* q, const void* k, const void* v, void* out, float* lse, int64_t B,
                              int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, bool causal, float scale,
                              void* stream) {
  if (B * H * T == 0) return nullptr;
  const bool aligned = aligned16(q) && aligned16(k) && aligned16(v);
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using Tp = std::remove_pointer_t<decltype(tag)>;
    return dispatch_dim_causal(D, causal, [&](auto dc, auto cc) -> const char* {
      constexpr int Dc = decltype(dc)::value;
      constexpr bool Cc = decltype(cc)::value;
      return launch_tiles<Cfg<Tp>>(
          attn_fwd_kernel<Tp, Dc, Cc>, Layout<Tp, Dc>::fwd + kSmemSlack,
          "attention: not enough shared memory for the forward kernel", T, H, B, stream, static_cast<const Tp*>(q),
          static_cast<const Tp*>(k), static_cast<const Tp*>(v), static_cast<Tp*>(out), lse, static_cast<int>(H),
          static_cast<int>(Hkv), static_cast<int>(T), static_cast<int>(S), scale, aligned);
    });
  });
}

const char* attention_backward(DType dt, const void* grad_out, const void* q, const void* k, const void* v,
                               const void* out, const float* lse, float* dsum, void* dq, void* dk, void* dv,
                               int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t S, int64_t D, bool causal,
                               float scale, void* stream) {
  if (B * H * T == 0 || B * Hkv * S == 0) return nullptr;
  const bool aligned = aligned16(q) && aligned16(k) && aligned16(v) && aligned16(grad_out);
  return tg_dispatch(dt, [&](auto* tag) -> const char* {
    using Tp = std::remove_pointer_t<decltype(tag)>;
    {
      auto kern = attn_bwd_dsum_kernel<Tp>;
      const int64_t rows = B * H * T;
      TG_LAUNCH(kern, static_cast<unsigned>((rows + 3) / 4), 128, 0, stream)
      (static_cast<const Tp*>(grad_out), static_cast<const Tp*>(out), dsum, rows, static_cast<int>(D));
      if (const char* e = tg_launch_error()) return e;
    }
    return dispatch_dim_causal(D, causal, [&](auto dc, auto cc) -> const char* {
      constexpr int Dc = decltype(dc)::value;
      constexpr bool Cc = decltype(cc)::value;
      const Tp *q_ = static_cast<const Tp*>(q), *k_ = static_cast<const Tp*>(k), *v_ = static_cast<const Tp*>(v),
               *go = static_cast<const Tp*>(grad_out);
      const float* ds = static_cast<const float*>(dsum);
      const int h = static_cast<int>(H), hkv = static_cast<int>(Hkv), t = static_cast<int>(T), s = static_cast<int>(S);
      if (const char* e = launch_tiles<Cfg<Tp>>(
              attn_bwd_dkdv_kernel<Tp, Dc, Cc>, Layout<Tp, Dc>::dkdv + kSmemSlack,
              "attention_backward: not enough shared memory for the dK/dV kernel", S, Hkv, B, stream, q_, k_, v_, go,
              lse, ds, static_cast<Tp*>(dk), static_cast<Tp*>(dv), h, hkv, t, s, scale, aligned))
        return e;
      return launch_tiles<Cfg<Tp>>(attn_bwd_dq_kernel<Tp, Dc, Cc>, Layout<Tp, Dc>::dq + kSmemSlack,
                                   "attention_backward: not enough shared memory for the dQ kernel", T, H, B, stream,
                                   q_, k_, v_, go, lse, ds, static_cast<Tp*>(dq), h, hkv, t, s, scale, aligned);
    });
  });
}

}  // namespace tinygpt::cuda
