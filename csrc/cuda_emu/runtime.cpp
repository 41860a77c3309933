// The CUDA emulation's scheduler: a block's threads are fibers that run until a barrier; the
// scheduler releases a barrier once every thread it concerns has arrived, and fails the launch
// on anything a GPU would hang on or leave undefined. See emu.h.
#include "cuda_emu/emu.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

namespace tinygpt::emu {

thread_local ThreadCtx* tl_ctx = nullptr;
thread_local cudaError_t last_error = cudaSuccess;

namespace {

constexpr size_t kStack = 256 * 1024;
constexpr unsigned char kGuardByte = 0xa5;

enum class State { ready, at_block_barrier, at_warp_point, done, failed };

struct Fiber {
  ucontext_t ctx;
  ThreadCtx tctx;
  State state = State::ready;
  const char* warp_kind = nullptr;
  uint64_t deposit = 0;
  int warp = 0, lane = 0;
};

// Fiber stacks with a guard page below each, reused across launches on this OS thread.
struct Stacks {
  char* base = nullptr;
  size_t count = 0;
  size_t stride() const { return kStack + static_cast<size_t>(getpagesize()); }
  char* get(size_t i) {
    if (i >= count) grow(i + 1);
    return base + i * stride() + getpagesize();
  }
  void grow(size_t n) {
    if (base) munmap(base, count * stride());
    n = std::max<size_t>(n, 1024);
    void* p = mmap(nullptr, n * stride(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("CUDA emulation: cannot map fiber stacks");
    base = static_cast<char*>(p);
    count = n;
    for (size_t i = 0; i < n; ++i) mprotect(base + i * stride(), getpagesize(), PROT_NONE);
  }
  ~Stacks() {
    if (base) munmap(base, count * stride());
  }
};

struct BlockRun {
  std::vector<Fiber> fibers;
  ucontext_t sched;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<unsigned char> smem;  // guard | dynamic shared memory | guard
  size_t smem_offset = 0;
  std::vector<float> scratch;  // per warp: 512 floats for WMMA
  std::vector<uint64_t> exchange;  // per warp: 32 deposits
  std::string error;
  unsigned nthreads = 0;
};

thread_local BlockRun* tl_block = nullptr;
thread_local Stacks tl_stacks;

std::mutex attr_mu;
std::map<const void*, size_t>& func_smem() {
  static std::map<const void*, size_t> m;
  return m;
}

void fiber_entry() {
  BlockRun* b = tl_block;
  (*b->body)();
  b->current->state = State::done;
  // returns to uc_link (the scheduler)
}

void yield_to_scheduler() {
  BlockRun* b = tl_block;
  swapcontext(&b->current->ctx, &b->sched);
}

std::string where(const Fiber& f) {
  return "thread (" + std::to_string(f.tctx.thread_idx.x) + "," + std::to_string(f.tctx.thread_idx.y) + "," +
         std::to_string(f.tctx.thread_idx.z) + ") of block (" + std::to_string(f.tctx.block_idx.x) + "," +
         std::to_string(f.tctx.block_idx.y) + "," + std::to_string(f.tctx.block_idx.z) + ")";
}

// Runs one block to completion; throws on a failure.
void run_block(BlockRun& b, std::mt19937& rng) {
  const unsigned n = b.nthreads;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.state = State::ready;
    f.warp_kind = nullptr;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = tl_stacks.get(i);
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &b.sched;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  std::vector<unsigned> order(n);
  const unsigned nwarps = (n + kWarp - 1) / kWarp;
  for (;;) {
    // Run every ready fiber until it waits or ends, in a shuffled order.
    order.clear();
    for (unsigned i = 0; i < n; ++i)
      if (b.fibers[i].state == State::ready) order.push_back(i);
    std::shuffle(order.begin(), order.end(), rng);
    for (unsigned i : order) {
      Fiber& f = b.fibers[i];
      b.current = &f;
      tl_ctx = &f.tctx;
      swapcontext(&b.sched, &f.ctx);
      tl_ctx = nullptr;
      if (f.state == State::failed) throw std::runtime_error("CUDA emulation: " + b.error + " (" + where(f) + ")");
    }
    // Release what can be released.
    bool progress = false, all_done = true, any_done = false, all_block = true;
    for (unsigned i = 0; i < n; ++i) {
      const State s = b.fibers[i].state;
      all_done &= s == State::done;
      any_done |= s == State::done;
      all_block &= s == State::at_block_barrier;
    }
    if (all_done) return;
    for (unsigned w = 0; w < nwarps; ++w) {
      const unsigned lo = w * kWarp, hi = std::min(n, lo + kWarp);
      bool waiting = false, all_waiting = true;
      const char* kind = nullptr;
      for (unsigned i = lo; i < hi; ++i) {
        const Fiber& f = b.fibers[i];
        if (f.state == State::at_warp_point) {
          waiting = true;
          if (kind && std::strcmp(kind, f.warp_kind) != 0)
            throw std::runtime_error(std::string("CUDA emulation: the lanes of warp ") + std::to_string(w) +
                                     " wait at different warp operations (" + kind + " and " + f.warp_kind + ")");
          kind = f.warp_kind;
        } else {
          all_waiting = false;
        }
      }
      if (!waiting) continue;
      if (hi - lo != static_cast<unsigned>(kWarp))
        throw std::runtime_error(std::string("CUDA emulation: ") + kind +
                                 " in a partial warp (block size not a multiple of 32)");
      if (!all_waiting) {
        for (unsigned i = lo; i < hi; ++i)
          if (b.fibers[i].state != State::at_warp_point)
            throw std::runtime_error(std::string("CUDA emulation: ") + kind + " with diverged lanes: " +
                                     where(b.fibers[i]) + " is " +
                                     (b.fibers[i].state == State::done ? "done" : "at __syncthreads") +
                                     " while its warp waits");
      }
      uint64_t* x = &b.exchange[static_cast<size_t>(w) * kWarp];
      for (unsigned i = lo; i < hi; ++i) {
        x[i - lo] = b.fibers[i].deposit;
        b.fibers[i].state = State::ready;
      }
      progress = true;
    }
    if (progress) continue;
    if (all_block) {
      for (unsigned i = 0; i < n; ++i) b.fibers[i].state = State::ready;
      continue;
    }
    // Nothing can move: some threads wait at __syncthreads while others have ended.
    for (unsigned i = 0; i < n; ++i)
      if (b.fibers[i].state == State::at_block_barrier && any_done)
        throw std::runtime_error("CUDA emulation: __syncthreads not reached by every thread of the block (" +
                                 where(b.fibers[i]) + " waits, others have returned)");
    throw std::runtime_error("CUDA emulation: deadlock");
  }
}

}  // namespace

[[noreturn]] void fail(const std::string& msg) {
  BlockRun* b = tl_block;
  if (!b || !b->current) throw std::runtime_error("CUDA emulation: " + msg);
  b->error = msg;
  b->current->state = State::failed;
  yield_to_scheduler();
  std::abort();  // never resumed
}

void block_barrier() {
  tl_block->current->state = State::at_block_barrier;
  yield_to_scheduler();
}

const uint64_t* warp_exchange(const char* kind, uint64_t value) {
  BlockRun* b = tl_block;
  Fiber* f = b->current;
  f->state = State::at_warp_point;
  f->warp_kind = kind;
  f->deposit = value;
  yield_to_scheduler();
  return &b->exchange[static_cast<size_t>(f->warp) * kWarp];
}

int lane_id() { return tl_block->current->lane; }

// 16-byte aligned but never 32-byte aligned: the least a GPU promises (static shared memory can
// come first), so a kernel that needs more (WMMA: 32 bytes) must align the pointer itself.
void* dynamic_smem() { return tl_block->smem.data() + tl_block->smem_offset; }

float* warp_scratch() { return &tl_block->scratch[static_cast<size_t>(tl_block->current->warp) * 512]; }

void set_func_max_smem(const void* func, size_t bytes) {
  std::lock_guard<std::mutex> g(attr_mu);
  func_smem()[func] = bytes;
}

void run_grid(dim3 grid, dim3 block, size_t smem, const void* func, const std::function<void()>& body) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  auto bad = [](const std::string& m) { throw std::runtime_error("CUDA emulation: invalid launch: " + m); };
  if (nthreads == 0 || nthreads > 1024) bad("block of " + std::to_string(nthreads) + " threads (1..1024)");
  if (block.z > 64) bad("blockDim.z > 64");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) bad("empty grid");
  if (grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u) bad("grid too large");
  size_t limit = kDefaultSmem;
  {
    std::lock_guard<std::mutex> g(attr_mu);
    auto it = func_smem().find(func);
    if (it != func_smem().end()) limit = std::max(limit, it->second);
  }
  if (smem > limit)
    bad(std::to_string(smem) + " bytes of dynamic shared memory, over the " + std::to_string(limit) +
        "-byte limit (raise it with cudaFuncSetAttribute)");
  if (tl_block) bad("a kernel launched from inside a kernel");

  BlockRun b;
  b.nthreads = static_cast<unsigned>(nthreads);
  b.fibers.resize(nthreads);
  b.body = &body;
  constexpr size_t kGuard = 64;
  b.smem.assign(smem + 2 * kGuard + 32, 0);
  {
    const uintptr_t p = reinterpret_cast<uintptr_t>(b.smem.data()) + kGuard;
    b.smem_offset = (((p + 31) & ~uintptr_t(31)) + 16) - reinterpret_cast<uintptr_t>(b.smem.data());
  }
  const unsigned nwarps = (b.nthreads + kWarp - 1) / kWarp;
  b.scratch.assign(static_cast<size_t>(nwarps) * 512, 0.0f);
  b.exchange.assign(static_cast<size_t>(nwarps) * kWarp, 0);
  for (unsigned i = 0; i < b.nthreads; ++i) {
    Fiber& f = b.fibers[i];
    f.tctx.thread_idx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    f.tctx.block_dim = block;
    f.tctx.grid_dim = grid;
    f.warp = static_cast<int>(i / kWarp);
    f.lane = static_cast<int>(i % kWarp);
  }
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint64_t> blocks(nblocks);
  for (uint64_t i = 0; i < nblocks; ++i) blocks[i] = i;
  static std::atomic<uint64_t> launches{0};
  std::mt19937 rng(static_cast<unsigned>(0x9e3779b9u * (launches.fetch_add(1) + 1)));
  std::shuffle(blocks.begin(), blocks.end(), rng);
  tl_block = &b;
  try {
    for (uint64_t id : blocks) {
      const uint3 bi{static_cast<unsigned>(id % grid.x), static_cast<unsigned>((id / grid.x) % grid.y),
                     static_cast<unsigned>(id / (uint64_t(grid.x) * grid.y))};
      for (Fiber& f : b.fibers) f.tctx.block_idx = bi;
      // Shared memory starts as garbage on a GPU; poison it so reads before writes show.
      // Guards around it catch writes past either end.
      std::fill(b.smem.begin(), b.smem.end(), kGuardByte);
      std::fill(b.smem.begin() + b.smem_offset, b.smem.begin() + b.smem_offset + smem, static_cast<unsigned char>(0xff));
      run_block(b, rng);
      for (size_t i = 0; i < b.smem.size(); ++i) {
        if (i >= b.smem_offset && i < b.smem_offset + smem) continue;
        if (b.smem[i] != kGuardByte) {
          const long long at = static_cast<long long>(i) - static_cast<long long>(b.smem_offset);
          throw std::runtime_error("CUDA emulation: a write outside the " + std::to_string(smem) +
                                   " bytes of dynamic shared memory (at byte " + std::to_string(at) + ") in block (" +
                                   std::to_string(bi.x) + "," + std::to_string(bi.y) + "," + std::to_string(bi.z) + ")");
        }
      }
    }
  } catch (...) {
    tl_block = nullptr;
    tl_ctx = nullptr;
    throw;
  }
  tl_block = nullptr;
}

}  // namespace tinygpt::emu

namespace nvcuda::wmma::detail {

const uint16_t* layout(int use) {
  static const auto tables = [] {
    std::vector<std::vector<uint16_t>> t(3, std::vector<uint16_t>(256));
    for (int u = 0; u < 3; ++u) {
      for (int i = 0; i < 256; ++i) t[u][i] = static_cast<uint16_t>(i);
      std::mt19937 rng(1234 + u);
      std::shuffle(t[u].begin(), t[u].end(), rng);
    }
    return t;
  }();
  return tables[use].data();
}

void check_ptr(const char* op, const void* p, unsigned ldm, size_t elem) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    ::tinygpt::emu::fail(std::string(op) + ": pointer not 32-byte aligned");
  if ((ldm * elem) % 16 != 0 || ldm < 16)
    ::tinygpt::emu::fail(std::string(op) + ": ldm must be >= 16 and a multiple of 16 bytes, got " + std::to_string(ldm));
}

}  // namespace nvcuda::wmma::detail

float __emu_half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31) v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else v = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

uint16_t __emu_float_to_half(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to infinity
  if (a < std::ldexp(1.0f, -14)) {  // subnormal: multiples of 2^-24, round to nearest even
    const float q = std::nearbyint(a * 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(q));
  }
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  const float scaled = std::ldexp(a, 11 - e);  // [1024, 2048)
  uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
  int exp = e - 1 + 15;
  if (m == 2048) {
    m = 1024;
    ++exp;
  }
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | (exp << 10) | (m & 0x3ffu));
}
