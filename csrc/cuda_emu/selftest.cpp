// Kernels that exercise each feature of the CUDA emulation, and kernels that misuse it on
// purpose, run by python_tests/test_cuda_emulation.py through tinygpt._cuda_emu. They follow
// the rules of common/cuda_compat.h, like the real kernels.
#include "common/cuda_compat.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <vector>

namespace py = pybind11;

namespace tinygpt::cuda {
namespace {

// out[i] = flat thread id, from every index the kernel can read.
__global__ void ids_kernel(int* out) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  out[b * blockDim.x * blockDim.y * blockDim.z + t] = static_cast<int>(b * 10000 + t);
}

// Block-wide sum through shared memory and a tree of barriers.
__global__ void block_sum_kernel(const float* x, float* out) {
  __shared__ float s[256];
  s[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// The same sum with the barrier inside the loop missing: a race the shuffled order exposes.
__global__ void racy_sum_kernel(const float* x, float* out) {
  __shared__ float s[256];
  s[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2)
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// Per lane: xor-butterfly sum, shfl from lane 3, shfl_down by 1, shfl_up by 2, ballot of odd
// values, any(v > 30), all(v >= 0), width-8 xor.
__global__ void warp_kernel(const int* x, int* out) {
  const int lane = threadIdx.x % 32;
  const int v = x[threadIdx.x];
  int* o = out + threadIdx.x * 8;
  int s = v;
  for (int m = 16; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
  o[0] = s;
  o[1] = __shfl_sync(0xffffffffu, v, 3);
  o[2] = __shfl_down_sync(0xffffffffu, v, 1);
  o[3] = __shfl_up_sync(0xffffffffu, v, 2);
  o[4] = static_cast<int>(__ballot_sync(0xffffffffu, v & 1));
  o[5] = __any_sync(0xffffffffu, v > 30);
  o[6] = __all_sync(0xffffffffu, v >= 0);
  o[7] = __shfl_xor_sync(0xffffffffu, v, 4, 8) + lane * 0;
}

__global__ void atomic_kernel(const float* x, float* fsum, int* isum, int* imax, unsigned* cas_count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, x[i]);
  atomicAdd(isum, 1);
  atomicMax(imax, i);
  unsigned old = *cas_count, seen;
  do {
    seen = old;
    old = atomicCAS(cas_count, seen, seen + 1);
  } while (old != seen);
}

// C (M x N, fp32) = A (M x K) * B (K x N), bf16 or fp16 operands, one warp per 16x16 output
// tile; A read row-major, B row- or column-major, C stored row- or column-major.
template <class T, bool BColMajor, bool CColMajor>
__global__ void wmma_kernel(const T* a, const T* b, float* c, int M, int N, int K) {
  using namespace nvcuda;
  const int tm = blockIdx.y, tn = blockIdx.x;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  using BL = std::conditional_t<BColMajor, wmma::col_major, wmma::row_major>;
  for (int k = 0; k < K; k += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BL> fb;
    wmma::load_matrix_sync(fa, a + tm * 16 * K + k, K);
    if (BColMajor) wmma::load_matrix_sync(fb, b + tn * 16 * K + k, K);  // b is N x K
    else wmma::load_matrix_sync(fb, b + k * N + tn * 16, N);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  if (CColMajor) wmma::store_matrix_sync(c + tn * 16 * M + tm * 16, acc, M, wmma::mem_col_major);
  else wmma::store_matrix_sync(c + tm * 16 * N + tn * 16, acc, N, wmma::mem_row_major);
}

// Copies an accumulator fragment's elements into an operand fragment: valid only for one
// hardware layout, so the emulation's scrambled layouts make the product wrong.
__global__ void wmma_layout_abuse_kernel(const __half* a, const __half* b, float* c) {
  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::load_matrix_sync(acc, c, 16, wmma::mem_row_major);
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = __float2half(acc.x[i]);
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
  wmma::load_matrix_sync(fb, b, 16);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
  (void)a;
}

// Lanes read a tile other lanes stored, with or without the __syncwarp a GPU needs in between.
template <bool Sync>
__global__ void wmma_store_then_read_kernel(float* out) {
  using namespace nvcuda;
  float* tile = tg_dynamic_smem<float>() + 4;  // 32-byte aligned (the base is 16 mod 32)
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 1.0f);
  wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
  if (Sync) __syncwarp();
  float s = 0.0f;
  for (int i = 0; i < 256; ++i) s += tile[i];
  out[threadIdx.x] = s;
}

__global__ void divergent_barrier_kernel(float* x) {
  if (threadIdx.x < 16) return;
  __syncthreads();
  x[threadIdx.x] = 1.0f;
}

__global__ void divergent_shuffle_kernel(float* x) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  x[threadIdx.x] = v;
}

__global__ void partial_mask_kernel(float* x) { x[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, x[threadIdx.x], 1); }

__global__ void misaligned_wmma_kernel(const __half* a, float* c) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + 1, 16);
  (void)c;
}

__global__ void dynamic_smem_kernel(float* out, int n) {
  float* s = tg_dynamic_smem<float>();
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = static_cast<float>(i);
  __syncthreads();
  float acc = 0.0f;
  for (int i = 0; i < n; ++i) acc += s[(i + threadIdx.x) % n];
  out[threadIdx.x] = acc;
}

__global__ void trap_kernel(float*) { __trap(); }

// Writes one float past the end of its n floats of dynamic shared memory.
__global__ void smem_overflow_kernel(int n) {
  float* s = tg_dynamic_smem<float>();
  if (threadIdx.x == 0) s[n] = 1.0f;
}

template <class... P>
void launch(void (*k)(P...), dim3 g, dim3 b, size_t smem, P... args) {
  TG_LAUNCH(k, g, b, smem, nullptr)(args...);
}

}  // namespace

void bind_emulation_selftest(py::module_& m) {
  auto t = m.def_submodule("selftest", "kernels that exercise (and misuse) the CUDA emulation");
  t.def("ids", [](std::vector<unsigned> grid, std::vector<unsigned> block) {
    const dim3 g(grid[0], grid[1], grid[2]), b(block[0], block[1], block[2]);
    std::vector<int> out(size_t(g.x) * g.y * g.z * b.x * b.y * b.z, -1);
    launch(ids_kernel, g, b, 0, out.data());
    return out;
  });
  t.def("block_sum", [](std::vector<float> x, unsigned block, bool racy) {
    std::vector<float> out(x.size() / block);
    auto k = racy ? racy_sum_kernel : block_sum_kernel;
    launch(k, dim3(static_cast<unsigned>(out.size())), dim3(block), 0, static_cast<const float*>(x.data()),
           out.data());
    return out;
  });
  t.def("warp", [](std::vector<int> x) {
    std::vector<int> out(x.size() * 8);
    launch(warp_kernel, dim3(1), dim3(static_cast<unsigned>(x.size())), 0, static_cast<const int*>(x.data()),
           out.data());
    return out;
  });
  t.def("atomics", [](std::vector<float> x, unsigned block) {
    float fsum = 0;
    int isum = 0, imax = -1;
    unsigned cas = 0;
    launch(atomic_kernel, dim3(static_cast<unsigned>(x.size() / block)), dim3(block), 0,
           static_cast<const float*>(x.data()), &fsum, &isum, &imax, &cas);
    return py::make_tuple(fsum, isum, imax, cas);
  });
  // a: M x K, b: K x N (or N x K if b_col_major), values as floats rounded to the 16-bit type.
  t.def("wmma", [](std::vector<float> a, std::vector<float> b, int M, int N, int K, bool half, bool b_col_major,
                   bool c_col_major) {
    std::vector<float> c(size_t(M) * N);
    auto run = [&](auto conv) {
      using T = decltype(conv(0.0f));
      // 32-byte aligned copies, as the hardware needs
      T* pa = static_cast<T*>(aligned_alloc(64, ((a.size() * sizeof(T) + 63) / 64) * 64));
      T* pb = static_cast<T*>(aligned_alloc(64, ((b.size() * sizeof(T) + 63) / 64) * 64));
      float* pc = static_cast<float*>(aligned_alloc(64, ((c.size() * 4 + 63) / 64) * 64));
      for (size_t i = 0; i < a.size(); ++i) pa[i] = conv(a[i]);
      for (size_t i = 0; i < b.size(); ++i) pb[i] = conv(b[i]);
      const dim3 g(N / 16, M / 16);
      try {
        auto k = b_col_major ? (c_col_major ? wmma_kernel<T, true, true> : wmma_kernel<T, true, false>)
                             : (c_col_major ? wmma_kernel<T, false, true> : wmma_kernel<T, false, false>);
        launch(k, g, dim3(32), 0, static_cast<const T*>(pa), static_cast<const T*>(pb), pc, M, N, K);
      } catch (...) {
        free(pa), free(pb), free(pc);
        throw;
      }
      std::copy(pc, pc + c.size(), c.begin());
      free(pa), free(pb), free(pc);
    };
    if (half) run([](float v) { return __float2half(v); });
    else run([](float v) { return __float2bfloat16(v); });
    return c;
  });
  t.def("wmma_layout_abuse", [](std::vector<float> c_in, std::vector<float> b_in) {
    __half* b = static_cast<__half*>(aligned_alloc(64, 512));
    float* c = static_cast<float*>(aligned_alloc(64, 1024));
    for (int i = 0; i < 256; ++i) b[i] = __float2half(b_in[i]), c[i] = c_in[i];
    launch(wmma_layout_abuse_kernel, dim3(1), dim3(32), 0, static_cast<const __half*>(b), static_cast<const __half*>(b), c);
    std::vector<float> out(c, c + 256);
    free(b), free(c);
    return out;
  });
  t.def("misuse", [](const std::string& what) {
    alignas(64) float x[1024] = {};
    alignas(64) __half h[512] = {};
    if (what == "divergent_barrier") launch(divergent_barrier_kernel, dim3(1), dim3(64), 0, static_cast<float*>(x));
    else if (what == "divergent_shuffle") launch(divergent_shuffle_kernel, dim3(1), dim3(64), 0, static_cast<float*>(x));
    else if (what == "partial_mask") launch(partial_mask_kernel, dim3(1), dim3(32), 0, static_cast<float*>(x));
    else if (what == "partial_warp") {
      alignas(64) int xi[64] = {}, out[64 * 8];
      launch(warp_kernel, dim3(1), dim3(48), 0, static_cast<const int*>(xi), static_cast<int*>(out));
    }
    else if (what == "misaligned_wmma") launch(misaligned_wmma_kernel, dim3(1), dim3(32), 0, static_cast<const __half*>(h), static_cast<float*>(x));
    else if (what == "too_much_smem") launch(trap_kernel, dim3(1), dim3(32), size_t(64 * 1024), static_cast<float*>(x));
    else if (what == "huge_block") launch(trap_kernel, dim3(1), dim3(2048), 0, static_cast<float*>(x));
    else if (what == "smem_overflow") launch(smem_overflow_kernel, dim3(1), dim3(32), size_t(64), 16);
    else if (what == "trap") launch(trap_kernel, dim3(2), dim3(32), 0, static_cast<float*>(x));
    else throw std::invalid_argument("unknown misuse " + what);
  });
  t.def("wmma_store_then_read", [](bool sync) {
    std::vector<float> out(32);
    auto k = sync ? wmma_store_then_read_kernel<true> : wmma_store_then_read_kernel<false>;
    launch(k, dim3(1), dim3(32), size_t(2048), out.data());
    return out;
  });
  t.def("dynamic_smem", [](int n, bool raise_limit) {
    std::vector<float> out(64);
    auto k = dynamic_smem_kernel;
    if (raise_limit && cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, n * 4) != cudaSuccess)
      throw std::runtime_error("cudaFuncSetAttribute failed");
    launch(k, dim3(1), dim3(64), size_t(n) * 4, out.data(), n);
    return out;
  });
}

}  // namespace tinygpt::cuda
