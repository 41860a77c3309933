// Small open-addressing hash tables for the tokenizer's hot paths: std::unordered_map
// allocates a node per entry and hashes strings slowly, which dominates BPE encoding time.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace tinygpt {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

// Fast hash for short byte strings (pre-tokens are mostly under 16 bytes).
inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
  }
  return mix64(h);
}

// uint64 key -> V. Key ~0 is reserved as the empty marker.
// Open-addressing tables stay at most half full: the smallest power of two >= 2n (and >= 16).
inline size_t table_capacity_for(size_t n) {
  size_t c = 16;
  while (c < n * 2) c <<= 1;
  return c;
}

template <class V>
class U64Map {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  explicit U64Map(size_t expected = 16) { rehash(table_capacity_for(expected)); }

  V* find(uint64_t key) {
    size_t i = mix64(key) & mask_;
    while (true) {
      if (keys_[i] == key) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  const V* find(uint64_t key) const { return const_cast<U64Map*>(this)->find(key); }

  // Returns the slot for key, default-constructing it if absent.
  V& operator[](uint64_t key) {
    if ((size_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
    size_t i = mix64(key) & mask_;
    while (true) {
      if (keys_[i] == key) return vals_[i];
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        ++size_;
        return vals_[i];
      }
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

  template <class F>
  void for_each(F&& f) {
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != kEmpty) f(keys_[i], vals_[i]);
  }

 private:
  void rehash(size_t cap) {
    std::vector<uint64_t> ok = std::move(keys_);
    std::vector<V> ov = std::move(vals_);
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, V{});
    mask_ = cap - 1;
    size_ = 0;
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) (*this)[ok[i]] = std::move(ov[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<V> vals_;
  size_t mask_ = 0, size_ = 0;
};

// Byte-string key -> V, keys stored in one arena.
template <class V>
class BytesMap {
 public:
  explicit BytesMap(size_t expected = 16) { rehash(table_capacity_for(expected)); }

  V* find(std::string_view key) { return find(key, hash_bytes(key.data(), key.size())); }
  const V* find(std::string_view key) const { return const_cast<BytesMap*>(this)->find(key); }
  V* find(std::string_view key, uint64_t h) {
    size_t i = h & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.len == kEmptyLen) return nullptr;
      if (s.hash == h && s.len == key.size() &&
          std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0)
        return &s.val;
      i = (i + 1) & mask_;
    }
  }
  // Inserts key (if absent) and returns its value slot; `inserted` tells which.
  V& insert(std::string_view key, bool* inserted = nullptr) {
    return insert(key, hash_bytes(key.data(), key.size()), inserted);
  }
  V& insert(std::string_view key, uint64_t h, bool* inserted = nullptr) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    size_t i = h & mask_;
    while (true) {
      Slot& s = slots_[i];
      if (s.len == kEmptyLen) {
        s.hash = h;
        s.off = arena_.size();
        s.len = static_cast<uint32_t>(key.size());
        arena_.append(key.data(), key.size());
        s.val = V{};
        ++size_;
        if (inserted) *inserted = true;
        return s.val;
      }
      if (s.hash == h && s.len == key.size() &&
          std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0) {
        if (inserted) *inserted = false;
        return s.val;
      }
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }
  size_t arena_bytes() const { return arena_.size(); }
  void clear() {
    arena_.clear();
    for (auto& s : slots_) s.len = kEmptyLen;
    size_ = 0;
  }
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_)
      if (s.len != kEmptyLen) f(std::string_view(arena_.data() + s.off, s.len), s.val);
  }

 private:
  static constexpr uint32_t kEmptyLen = ~uint32_t{0};
  struct Slot {
    uint64_t hash = 0;
    size_t off = 0;
    uint32_t len = kEmptyLen;
    V val{};
  };
  void rehash(size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (Slot& s : old) {
      if (s.len == kEmptyLen) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmptyLen) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace tinygpt
