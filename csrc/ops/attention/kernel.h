// Flash-style attention on the CPU, compiled once per ISA (kernel_{base,avx2,avx512}.cpp).
//
// Forward, per (batch, head, block of 64 query rows): scores against 64-key tiles, online
// softmax (running max and sum per row), output accumulated tile by tile; no T x S matrix is
// ever stored, and under `causal` tiles past the diagonal are skipped. The log-sum-exp of each
// row is kept for the backward.
// Backward, per (batch, key/value head): for each key tile, for each query tile that sees it,
// recompute P = exp(S - lse), then dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O)),
// dK += dS^T Q, dQ += dS K. One task owns a key/value head, so with grouped-query attention the
// dK/dV sums over its query heads need no locks.
// All math is float32; bfloat16 inputs are widened as they are copied into the task's scratch,
// where head dims are padded to a multiple of 16 with zeros so every inner loop is whole vectors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/attention/shape.h"
#include "common/simd.h"

namespace tinygpt {
namespace TINYGPT_ISA {
namespace {

// Register blocking of the small matrix products: MR rows x NV groups of 16 columns, held in
// vectors of the machine's own width (wider GCC vectors would live in memory without AVX-512).
#if defined(__AVX512F__)
typedef float fw __attribute__((vector_size(64)));
constexpr int kMR = 6, kNV = 4;
#elif defined(__AVX__)
typedef float fw __attribute__((vector_size(32)));
constexpr int kMR = 6, kNV = 1;
#else
typedef float fw __attribute__((vector_size(16)));
constexpr int kMR = 2, kNV = 1;
#endif
constexpr int kW = sizeof(fw) / sizeof(float);

// C[MR x 16*NV] (+)= A[MR x K] * B[K x 16*NV]. A[r][k] is A[r * ars + k * aks], so the same
// kernel reads A transposed (ars = 1) without copying it; B and C are row-major.
template <int MR, int NV>
inline void micro(int64_t K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb, float* C,
                  int64_t ldc, bool accumulate) {
  constexpr int NW = 16 * NV / kW;
  fw c[MR][NW];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NW; ++v) {
      if (accumulate)
        __builtin_memcpy(&c[r][v], C + r * ldc + kW * v, sizeof(fw));
      else
        c[r][v] = fw{};
    }
  for (int64_t k = 0; k < K; ++k) {
    fw b[NW];
#pragma GCC unroll 16
    for (int v = 0; v < NW; ++v) __builtin_memcpy(&b[v], B + k * ldb + kW * v, sizeof(fw));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const fw a = fw{} + A[r * ars + k * aks];
#pragma GCC unroll 16
      for (int v = 0; v < NW; ++v) c[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NW; ++v) __builtin_memcpy(C + r * ldc + kW * v, &c[r][v], sizeof(fw));
}

template <int MR>
inline void micro_rows(int nv, int64_t K, const float* A, int64_t ars, int64_t aks, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool acc) {
  switch (nv) {
    case 1: micro<MR, 1>(K, A, ars, aks, B, ldb, C, ldc, acc); break;
    case 2: micro<MR, 2 <= kNV ? 2 : 1>(K, A, ars, aks, B, ldb, C, ldc, acc); break;
    case 3: micro<MR, 3 <= kNV ? 3 : 1>(K, A, ars, aks, B, ldb, C, ldc, acc); break;
    default: micro<MR, kNV>(K, A, ars, aks, B, ldb, C, ldc, acc); break;
  }
}

// C[M x N] (+)= op(A)[M x K] B[K x N], N a multiple of 16; op(A)[m][k] = A[m * ars + k * aks].
inline void gemm_s(int64_t M, int64_t N, int64_t K, const float* A, int64_t ars, int64_t aks, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool acc) {
  for (int64_t n0 = 0; n0 < N; n0 += 16 * kNV) {
    const int nv = static_cast<int>((N - n0) / 16 < kNV ? (N - n0) / 16 : kNV);
    int64_t m0 = 0;
    for (; m0 + kMR <= M; m0 += kMR)
      micro_rows<kMR>(nv, K, A + m0 * ars, ars, aks, B + n0, ldb, C + m0 * ldc + n0, ldc, acc);
    for (; m0 < M; ++m0) micro_rows<1>(nv, K, A + m0 * ars, ars, aks, B + n0, ldb, C + m0 * ldc + n0, ldc, acc);
  }
}

// Row-major A[M x K] (leading dimension lda).
inline void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool acc) {
  gemm_s(M, N, K, A, lda, 1, B, ldb, C, ldc, acc);
}

// A given as its transpose: At is K x M row-major (leading dimension ldat).
inline void gemm_tn(int64_t M, int64_t N, int64_t K, const float* At, int64_t ldat, const float* B, int64_t ldb,
                    float* C, int64_t ldc, bool acc) {
  gemm_s(M, N, K, At, 1, ldat, B, ldb, C, ldc, acc);
}

// dst[r][c] = src[c][r] for an R x C block (both row-major with leading dimensions).
inline void transpose(int64_t R, int64_t C, const float* src, int64_t lds, float* dst, int64_t ldd) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < R; ++r) dst[r * ldd + c] = src[c * lds + r];
}

// One row of D input elements (float or bf16) as Dp floats times `mul`, zero-padded.
inline void load_row(const void* base, bool bf16, int64_t index, int64_t D, int64_t Dp, float mul, float* dst) {
  int64_t d = 0;
  if (bf16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + index * D;
    for (; d + 16 <= D; d += 16) store(dst + d, load_bf16(p + d) * mul);
    if (d < D) store(dst + d, load_bf16_n(p + d, static_cast<int>(D - d)) * mul), d += 16;
  } else {
    const float* p = static_cast<const float*>(base) + index * D;
    for (; d + 16 <= D; d += 16) store(dst + d, load(p + d) * mul);
    if (d < D) store(dst + d, load_n(p + d, static_cast<int>(D - d)) * mul), d += 16;
  }
  for (; d < Dp; d += 16) store(dst + d, splat(0.f));
}

// Writes D floats of src (times mul) as one output row.
inline void store_row(void* base, bool bf16, int64_t index, int64_t D, const float* src, float mul) {
  int64_t d = 0;
  if (bf16) {
    uint16_t* p = static_cast<uint16_t*>(base) + index * D;
    for (; d + 16 <= D; d += 16) store_bf16(p + d, load(src + d) * mul);
    if (d < D) store_bf16_n(p + d, load(src + d) * mul, static_cast<int>(D - d));
  } else {
    float* p = static_cast<float*>(base) + index * D;
    for (; d + 16 <= D; d += 16) store(p + d, load(src + d) * mul);
    if (d < D) store_n(p + d, load(src + d) * mul, static_cast<int>(D - d));
  }
}

// Keys [0, S) of one key/value head as K^T (Dp x Sp) and/or row-major (Sp x Dp), zero-padded.
inline void load_keys(const void* base, bool bf16, int64_t first, int64_t S, int64_t D, int64_t Dp, int64_t Sp,
                      float* rows, float* cols) {
  for (int64_t j = 0; j < Sp; ++j) {
    float* r = rows + j * Dp;
    if (j < S) {
      load_row(base, bf16, first + j, D, Dp, 1.f, r);
    } else {
      for (int64_t d = 0; d < Dp; d += 16) store(r + d, splat(0.f));
    }
  }
  if (cols) transpose(Dp, Sp, rows, Dp, cols, Sp);
}

// The last key each query row may see (exclusive), under causal masking: query i is position
// i + (S - T) of the S keys.
inline int64_t key_limit(const AttnShape& s, int64_t i) {
  if (!s.causal) return s.S;
  const int64_t lim = i + (s.S - s.T) + 1;
  return lim < s.S ? lim : s.S;
}

// Whether the n rows of X (row stride Dp) hold a NaN or an infinity: x - x is 0 for every finite x.
inline bool any_nonfinite(const float* X, int64_t n, int64_t Dp) {
  f32x16 acc = splat(0.f);
  for (int64_t i = 0; i < n * Dp; i += 16) {
    const f32x16 x = load(X + i);
    acc += x - x;
  }
  return hsum(acc) != 0.f;
}

// C[r] += A[r, :valid_r] B[:valid_r] for each row r of a tile that causal masking cuts: the exact
// product over the keys each row sees. The tile-wide gemm would also add 0 x B for the masked
// keys, which is 0 unless B holds a NaN or an infinity, and then turns the row NaN: a value a
// query cannot see must not reach it. (`lim(r)` is the keys row r sees, counted from the tile's.)
template <class Lim>
inline void gemm_seen(int64_t rows, int64_t Dp, const float* A, int64_t lda, const float* B, float* C, Lim lim) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t k = lim(r) < 0 ? 0 : (lim(r) > kAttnBc ? kAttnBc : lim(r));
    if (k > 0) gemm(1, Dp, k, A + r * lda, lda, B, Dp, C + r * Dp, Dp, true);
  }
}

// C[:lim(r)] += A[r, :lim(r)]^T B[r] for each row r: gemm_tn over the keys each row sees (see
// gemm_seen), for the key gradients.
template <class Lim>
inline void gemm_tn_seen(int64_t rows, int64_t Dp, const float* At, int64_t ldat, const float* B, float* C, Lim lim) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t k = lim(r) < 0 ? 0 : (lim(r) > kAttnBc ? kAttnBc : lim(r));
    if (k > 0) gemm_tn(k, Dp, 1, At + r * ldat, ldat, B + r * Dp, Dp, C, Dp, true);
  }
}

}  // namespace

void attn_fwd_task(const AttnShape& s, const void* q, const void* k, const void* v, void* out, float* lse,
                   int64_t b, int64_t h, float* scratch) {
  const int64_t Dp = attn_round16(s.D), Hg = s.H / s.Hkv, hk = h / Hg, Sp = attn_round_bc(s.S);
  float* Q = scratch;
  float* Kt = Q + kAttnBr * Dp;
  float* V = Kt + Dp * Sp;
  float* P = V + Sp * Dp;
  float* O = P + kAttnBr * kAttnBc;
  float* m = O + kAttnBr * Dp;
  float* l = m + kAttnBr;

  // this head's keys and values, once for all its query blocks
  const int64_t qrow = (b * s.H + h) * s.T, krow = (b * s.Hkv + hk) * s.S;
  load_keys(k, s.bf16, krow, s.S, s.D, Dp, Sp, V, Kt);  // V as a staging area for K rows
  load_keys(v, s.bf16, krow, s.S, s.D, Dp, Sp, V, nullptr);

  for (int64_t q0 = 0; q0 < s.T; q0 += kAttnBr) {
    const int64_t rows = s.T - q0 < kAttnBr ? s.T - q0 : kAttnBr;
    const int64_t kend = key_limit(s, q0 + rows - 1);  // keys any row of this block sees
    for (int64_t r = 0; r < rows; ++r) {
      load_row(q, s.bf16, qrow + q0 + r, s.D, Dp, s.scale, Q + r * Dp);
      m[r] = -__builtin_inff();
      l[r] = 0.f;
      for (int64_t d = 0; d < Dp; d += 16) store(O + r * Dp + d, splat(0.f));
    }
    for (int64_t j0 = 0; j0 < kend; j0 += kAttnBc) {
      gemm(rows, kAttnBc, Dp, Q, Dp, Kt + j0, Sp, P, kAttnBc, false);
      const bool full = key_limit(s, q0) >= j0 + kAttnBc;  // no masking in this tile
      for (int64_t r = 0; r < rows; ++r) {
        float* p = P + r * kAttnBc;
        if (!full) {
          const int64_t valid = key_limit(s, q0 + r) - j0;  // keys of this tile the row sees
          for (int64_t c = valid < 0 ? 0 : valid; c < kAttnBc; ++c) p[c] = -__builtin_inff();
        }
        f32x16 mx = load(p);
        for (int c = 16; c < kAttnBc; c += 16) mx = vmax(mx, load(p + c));
        const float tile_max = hmax(mx);
        const float mnew = tile_max > m[r] ? tile_max : m[r];
        const float alpha = sexp(m[r] - mnew);  // exp(-inf) = 0 for the first tile
        f32x16 sum = splat(0.f);
        const f32x16 mv = splat(mnew);
        for (int c = 0; c < kAttnBc; c += 16) {
          f32x16 e = vexp(load(p + c) - mv);
          store(p + c, e);
          sum += e;
        }
        l[r] = l[r] * alpha + hsum(sum);
        m[r] = mnew;
        if (alpha != 1.f) {
          const f32x16 av = splat(alpha);
          for (int64_t d = 0; d < Dp; d += 16) store(O + r * Dp + d, load(O + r * Dp + d) * av);
        }
      }
      if (full || !any_nonfinite(V + j0 * Dp, kAttnBc, Dp)) {
        gemm(rows, Dp, kAttnBc, P, kAttnBc, V + j0 * Dp, Dp, O, Dp, true);
      } else {
        gemm_seen(rows, Dp, P, kAttnBc, V + j0 * Dp, O, [&](int64_t r) { return key_limit(s, q0 + r) - j0; });
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      store_row(out, s.bf16, qrow + q0 + r, s.D, O + r * Dp, 1.f / l[r]);
      lse[qrow + q0 + r] = m[r] + __builtin_logf(l[r]);
    }
  }
}

void attn_bwd_task(const AttnShape& s, const void* q, const void* k, const void* v, const void* out,
                   const void* dout, const float* lse, void* dq, void* dk, void* dv, int64_t b, int64_t hk,
                   float* scratch) {
  const int64_t Dp = attn_round16(s.D), Sp = attn_round_bc(s.S), Hg = s.H / s.Hkv;
  const int64_t T = s.T;  // the layout of attn_bwd_scratch (shape.h)
  float* Q = scratch;                 // T x Dp, scaled
  float* dO = Q + T * Dp;             // T x Dp
  float* dQ = dO + T * Dp;            // T x Dp
  float* L = dQ + T * Dp;             // T: lse
  float* Dl = L + T;                  // T: rowsum(dO * O)
  float* Kt = Dl + T;                 // Dp x Sp
  float* K = Kt + Dp * Sp;            // Sp x Dp
  float* Vt = K + Sp * Dp;            // Dp x Sp
  float* dK = Vt + Dp * Sp;           // Sp x Dp
  float* dV = dK + Sp * Dp;           // Sp x Dp
  float* P = dV + Sp * Dp;            // Br x Bc
  float* dP = P + kAttnBr * kAttnBc;  // Br x Bc, then dS

  const int64_t krow = (b * s.Hkv + hk) * s.S;
  load_keys(k, s.bf16, krow, s.S, s.D, Dp, Sp, K, Kt);
  load_keys(v, s.bf16, krow, s.S, s.D, Dp, Sp, dV, Vt);  // dV as a staging area for V rows
  for (int64_t i = 0; i < Sp * Dp; i += 16) {
    store(dK + i, splat(0.f));
    store(dV + i, splat(0.f));
  }

  for (int64_t h = hk * Hg; h < (hk + 1) * Hg; ++h) {
    const int64_t qrow = (b * s.H + h) * s.T;
    for (int64_t r = 0; r < s.T; ++r) {
      load_row(q, s.bf16, qrow + r, s.D, Dp, s.scale, Q + r * Dp);
      load_row(dout, s.bf16, qrow + r, s.D, Dp, 1.f, dO + r * Dp);
      load_row(out, s.bf16, qrow + r, s.D, Dp, 1.f, dQ + r * Dp);  // O, staged in dQ
      f32x16 acc = splat(0.f);
      for (int64_t d = 0; d < Dp; d += 16) acc += load(dO + r * Dp + d) * load(dQ + r * Dp + d);
      Dl[r] = hsum(acc);
      L[r] = lse[qrow + r];
    }
    for (int64_t i = 0; i < s.T * Dp; i += 16) store(dQ + i, splat(0.f));

    for (int64_t j0 = 0; j0 < s.S; j0 += kAttnBc) {
      // the first query row that sees key j0
      int64_t first = 0;
      if (s.causal) first = j0 - (s.S - s.T) > 0 ? j0 - (s.S - s.T) : 0;
      for (int64_t q0 = first / kAttnBr * kAttnBr; q0 < s.T; q0 += kAttnBr) {
        const int64_t rows = s.T - q0 < kAttnBr ? s.T - q0 : kAttnBr;
        gemm(rows, kAttnBc, Dp, Q + q0 * Dp, Dp, Kt + j0, Sp, P, kAttnBc, false);
        gemm(rows, kAttnBc, Dp, dO + q0 * Dp, Dp, Vt + j0, Sp, dP, kAttnBc, false);
        for (int64_t r = 0; r < rows; ++r) {
          float* p = P + r * kAttnBc;
          float* dp = dP + r * kAttnBc;
          const int64_t valid = key_limit(s, q0 + r) - j0;
          const f32x16 lv = splat(L[q0 + r]), dv = splat(Dl[q0 + r]);
          for (int c = 0; c < kAttnBc; c += 16) {
            f32x16 e = vexp(load(p + c) - lv);
            store(p + c, e);
            store(dp + c, e * (load(dp + c) - dv));  // dS
          }
          for (int64_t c = valid < 0 ? 0 : valid; c < kAttnBc; ++c) p[c] = dp[c] = 0.f;
        }
        const int64_t keys = s.S - j0 < kAttnBc ? s.S - j0 : kAttnBc;
        const auto seen = [&](int64_t r) { return key_limit(s, q0 + r) - j0; };
        const bool cut = key_limit(s, q0) < j0 + kAttnBc;  // masking cuts this tile
        if (cut && any_nonfinite(dO + q0 * Dp, rows, Dp)) {
          gemm_tn_seen(rows, Dp, P, kAttnBc, dO + q0 * Dp, dV + j0 * Dp, seen);
        } else {
          gemm_tn(keys, Dp, rows, P, kAttnBc, dO + q0 * Dp, Dp, dV + j0 * Dp, Dp, true);  // P^T dO
        }
        if (cut && any_nonfinite(Q + q0 * Dp, rows, Dp)) {
          gemm_tn_seen(rows, Dp, dP, kAttnBc, Q + q0 * Dp, dK + j0 * Dp, seen);
        } else {
          gemm_tn(keys, Dp, rows, dP, kAttnBc, Q + q0 * Dp, Dp, dK + j0 * Dp, Dp, true);  // dS^T Q
        }
        if (cut && any_nonfinite(K + j0 * Dp, kAttnBc, Dp)) {
          gemm_seen(rows, Dp, dP, kAttnBc, K + j0 * Dp, dQ + q0 * Dp, seen);
        } else {
          gemm(rows, Dp, kAttnBc, dP, kAttnBc, K + j0 * Dp, Dp, dQ + q0 * Dp, Dp, true);
        }
      }
    }
    for (int64_t r = 0; r < s.T; ++r) store_row(dq, s.bf16, qrow + r, s.D, dQ + r * Dp, s.scale);
  }
  for (int64_t j = 0; j < s.S; ++j) {
    store_row(dk, s.bf16, krow + j, s.D, dK + j * Dp, 1.f);
    store_row(dv, s.bf16, krow + j, s.D, dV + j * Dp, 1.f);
  }
}

}  // namespace TINYGPT_ISA
}  // namespace tinygpt
