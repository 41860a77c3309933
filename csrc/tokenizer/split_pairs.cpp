#include "split_pairs.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string_view>

namespace tinygpt {

namespace {

// Polynomial hashes mod the Mersenne prime 2^61 - 1 with bases drawn at random per process, so
// that a crafted vocabulary cannot aim for collisions. Two independent hashes identify a string
// (a false match needs both to collide: about 2^-120 per comparison), so a match costs O(1)
// instead of a byte comparison, which for tokens that are prefixes of each other would make the
// whole pass cubic.
constexpr uint64_t kP = (uint64_t{1} << 61) - 1;

uint64_t mulmod(uint64_t a, uint64_t b) {
  const unsigned __int128 x = static_cast<unsigned __int128>(a) * b;
  const uint64_t r = static_cast<uint64_t>(x & kP) + static_cast<uint64_t>(x >> 61);
  return r >= kP ? r - kP : r;
}

uint64_t random_base(std::random_device& rd) {
  return (((uint64_t{rd()} << 32) | rd()) % (kP - 1024)) + 512;
}

struct Hash2 {
  uint64_t a, b;
};

class PolyHash {
 public:
  PolyHash() {
    std::random_device rd;
    base_[0] = random_base(rd);
    base_[1] = random_base(rd);
    pow_.push_back({1, 1});
  }

  // prefix[i] = hashes of s[0:i], for i in 0..s.size().
  void prefixes(std::string_view s, std::vector<Hash2>& prefix) {
    prefix.resize(s.size() + 1);
    prefix[0] = {0, 0};
    for (size_t i = 0; i < s.size(); ++i) {
      const uint64_t c = static_cast<uint8_t>(s[i]) + 1;
      prefix[i + 1] = {step(prefix[i].a, base_[0], c), step(prefix[i].b, base_[1], c)};
    }
    while (pow_.size() <= s.size())
      pow_.push_back({mulmod(pow_.back().a, base_[0]), mulmod(pow_.back().b, base_[1])});
  }

  // The hashes of s[i:j] from s's prefix hashes.
  Hash2 range(const std::vector<Hash2>& prefix, size_t i, size_t j) const {
    return {sub(prefix[j].a, mulmod(prefix[i].a, pow_[j - i].a)), sub(prefix[j].b, mulmod(prefix[i].b, pow_[j - i].b))};
  }

 private:
  static uint64_t step(uint64_t h, uint64_t base, uint64_t c) {
    const uint64_t x = mulmod(h, base) + c;
    return x >= kP ? x - kP : x;
  }
  static uint64_t sub(uint64_t x, uint64_t y) { return x >= y ? x - y : x + kP - y; }

  uint64_t base_[2];
  std::vector<Hash2> pow_;
};

// The exact, quadratic method: the fallback if two tokens' hashes ever collide.
void for_each_split_by_lookup(const std::vector<std::string>& tokens, const std::vector<uint8_t>& usable,
                              const BytesMap<uint32_t>& whole,
                              const std::function<void(uint32_t, uint32_t, uint32_t)>& emit) {
  for (uint32_t id = 0; id < tokens.size(); ++id) {
    if (!usable[id]) continue;
    const std::string_view t = tokens[id];
    for (size_t k = 1; k < t.size(); ++k) {
      const uint32_t* l = whole.find(t.substr(0, k));
      if (!l) continue;
      const uint32_t* r = whole.find(t.substr(k));
      if (r) emit(*l, *r, id);
    }
  }
}

}  // namespace

void for_each_split(const std::vector<std::string>& tokens, const std::vector<uint8_t>& usable,
                    const BytesMap<uint32_t>& whole,
                    const std::function<void(uint32_t, uint32_t, uint32_t)>& emit) {
  PolyHash hash;
  std::vector<Hash2> prefix;
  std::vector<size_t> lengths;
  size_t count = 0;
  for (uint32_t id = 0; id < tokens.size(); ++id)
    if (usable[id]) ++count, lengths.push_back(tokens[id].size());
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  std::vector<uint8_t> is_length(lengths.empty() ? 1 : lengths.back() + 1, 0);
  for (size_t n : lengths) is_length[n] = 1;

  U64Map<uint32_t> by_hash(count);           // first hash (< 2^61, never the empty key) -> id
  std::vector<uint64_t> second(tokens.size());  // id -> second hash
  for (uint32_t id = 0; id < tokens.size(); ++id) {
    if (!usable[id]) continue;
    hash.prefixes(tokens[id], prefix);
    if (by_hash.find(prefix.back().a)) return for_each_split_by_lookup(tokens, usable, whole, emit);
    by_hash[prefix.back().a] = id;
    second[id] = prefix.back().b;
  }
  // The token whose bytes are t[i:j], or nullptr.
  auto token_at = [&](std::string_view t, size_t i, size_t j) -> const uint32_t* {
    const Hash2 h = hash.range(prefix, i, j);
    const uint32_t* id = by_hash.find(h.a);
    return id && tokens[*id].size() == j - i && second[*id] == h.b ? id : nullptr;
  };
  for (uint32_t id = 0; id < tokens.size(); ++id) {
    if (!usable[id] || tokens[id].size() < 2) continue;
    const std::string_view t = tokens[id];
    hash.prefixes(t, prefix);
    for (size_t k : lengths) {  // only a length some token has can be the left part's
      if (k >= t.size()) break;
      if (!is_length[t.size() - k]) continue;
      const uint32_t* l = token_at(t, 0, k);
      if (!l) continue;
      const uint32_t* r = token_at(t, k, t.size());
      if (r) emit(*l, *r, id);
    }
  }
}

}  // namespace tinygpt
