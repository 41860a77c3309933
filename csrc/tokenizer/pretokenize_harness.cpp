// Test/benchmark driver for pretokenize.h (not part of the package). Build out of tree:
//   g++ -O2 -std=c++17 -o /tmp/pretok_harness csrc/tokenizer/pretokenize_harness.cpp
// Usage:
//   pretok_harness gpt2|gpt4            stdin = raw bytes; prints "begin end" per piece
//   pretok_harness gpt2|gpt4 batch      stdin = records (u64 little-endian length + bytes);
//                                       prints one line of piece end offsets per record
//   pretok_harness gpt2|gpt4 bench [N]  stdin = raw bytes; splits it N times (default 20),
//                                       prints pieces and best-of-N MB/s
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "pretokenize.h"

using tinygpt::pretok::Pattern;

static std::string read_all() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

int main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "gpt2") && std::strcmp(argv[1], "gpt4"))) {
    std::fprintf(stderr, "usage: %s gpt2|gpt4 [batch|bench [N]]\n", argv[0]);
    return 2;
  }
  const Pattern pat = std::strcmp(argv[1], "gpt2") == 0 ? Pattern::GPT2 : Pattern::GPT4;
  const std::string mode = argc > 2 ? argv[2] : "";
  const std::string in = read_all();

  if (mode.empty()) {
    std::string out;
    tinygpt::pretok::split(pat, in.data(), in.size(), [&](size_t b, size_t e) {
      out += std::to_string(b) + ' ' + std::to_string(e) + '\n';
    });
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else if (mode == "batch") {
    std::string out;
    size_t pos = 0;
    while (pos + 8 <= in.size()) {
      uint64_t len = 0;
      for (int i = 0; i < 8; ++i) len |= uint64_t(uint8_t(in[pos + i])) << (8 * i);
      pos += 8;
      if (len > in.size() - pos) return 3;
      // Exact-size copy so that sanitizer builds catch any read past the end of a record.
      std::unique_ptr<char[]> rec(new char[len ? len : 1]);
      std::memcpy(rec.get(), in.data() + pos, len);
      tinygpt::pretok::split(pat, rec.get(), len, [&](size_t, size_t e) {
        out += std::to_string(e);
        out += ' ';
      });
      out += '\n';
      pos += len;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else if (mode == "bench") {
    const int iters = argc > 3 ? std::atoi(argv[3]) : 20;
    double best = 1e30;
    size_t pieces = 0, check = 0;
    for (int it = 0; it < iters; ++it) {
      pieces = 0;
      auto t0 = std::chrono::steady_clock::now();
      tinygpt::pretok::split(pat, in.data(), in.size(), [&](size_t b, size_t e) {
        ++pieces;
        check += e - b;  // keeps the work observable
      });
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (dt < best) best = dt;
    }
    std::printf("%s bytes=%zu pieces=%zu best=%.3f ms %.1f MB/s (check %zu)\n", argv[1], in.size(),
                pieces, best * 1e3, in.size() / best / 1e6, check);
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  return 0;
}
