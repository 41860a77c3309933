// Byte-level BPE encoder/decoder. Two merge semantics share one engine:
//  - rank mode (tiktoken): any two adjacent parts whose concatenation is a token may merge, lowest
//    rank first; a pre-token that is itself a token is emitted whole.
//  - merge-list mode (Hugging Face): only listed merges apply, in list order.
// Both reduce to a table (left id, right id) -> (merged id, priority), applied lowest priority
// first and leftmost on ties.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hash.h"

namespace tinygpt {

enum class PatternKind { GPT2, GPT4, Custom };

// Pre-token -> ids, so that frequent words skip the merge loop entirely.
struct PieceCache {
  BytesMap<std::pair<uint32_t, uint32_t>> map{1 << 12};  // piece -> (offset, count) in ids
  std::vector<uint32_t> ids;
};

class BPE {
 public:
  // tokens[id] is the byte string of token id; present[id] == 0 marks an unused id. In rank
  // mode rank == id and `merges` is ignored; otherwise merges (pairs of ids) give the priority
  // order. Throws std::invalid_argument on an inconsistent vocabulary.
  BPE(std::vector<std::string> tokens, std::vector<uint8_t> present, bool rank_mode,
      const std::vector<std::pair<uint32_t, uint32_t>>& merges,
      std::vector<std::pair<std::string, uint32_t>> specials, PatternKind pattern,
      bool whole_piece);

  size_t id_limit() const { return tokens_.size(); }  // one past the largest id
  PatternKind pattern() const { return pattern_; }
  const std::vector<std::pair<std::string, uint32_t>>& specials() const { return specials_; }

  // A piece cache borrowed from the pool for the lifetime of the lease; one per thread.
  class CacheLease {
   public:
    explicit CacheLease(const BPE* owner);
    ~CacheLease();
    CacheLease(const CacheLease&) = delete;
    CacheLease& operator=(const CacheLease&) = delete;
    PieceCache& cache() { return *cache_; }

   private:
    const BPE* owner_;
    std::unique_ptr<PieceCache> cache_;
  };

  // Text without special-token handling (built-in patterns only). Splits at occurrences of the
  // allowed specials (indices into specials()), emitting their ids.
  void encode(std::string_view text, const std::vector<int>& allowed, std::vector<uint32_t>& out,
              PieceCache& cache) const;
  void encode(std::string_view text, const std::vector<int>& allowed,
              std::vector<uint32_t>& out) const {
    CacheLease lease(this);
    encode(text, allowed, out, lease.cache());
  }
  // Index into specials() of the leftmost occurrence of any of `which` in text, or -1.
  int find_special(std::string_view text, const std::vector<int>& which) const;
  // One pre-token (custom patterns split in Python and call this).
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out) const;

  // Appends the bytes of ids; returns false and sets *bad to the offending id if one is unknown.
  bool decode(const int64_t* ids, size_t n, std::string& out, int64_t* bad) const;
  bool has_id(int64_t id) const {
    return id >= 0 && static_cast<uint64_t>(id) < tokens_.size() && present_[id];
  }

  // Re-derives, for each multi-byte token in rank order, the pair it is built from (what a
  // merge-list tokenizer needs to reproduce rank-mode encoding). Rank mode only.
  std::vector<std::pair<uint32_t, uint32_t>> derive_merges() const;

 private:
  std::vector<std::string_view> special_names(const std::vector<int>& which) const;
  void encode_segment(std::string_view text, std::vector<uint32_t>& out, PieceCache& cache) const;
  void encode_piece_cached(std::string_view piece, std::vector<uint32_t>& out,
                           PieceCache& cache) const;
  void merge_bytes(const char* p, size_t n, std::vector<uint32_t>& out,
                   uint32_t max_priority = ~0u) const;
  void add_split_pairs(const std::vector<uint8_t>& is_special);
  void merge_small(const char* p, size_t n, std::vector<uint32_t>& out, uint32_t max_priority) const;
  void merge_large(const char* p, size_t n, std::vector<uint32_t>& out, uint32_t max_priority) const;
  // (merged id, priority) for a pair, or nullptr.
  const std::pair<uint32_t, uint32_t>* lookup(uint32_t a, uint32_t b) const {
    return pairs_.find((uint64_t{a} << 32) | b);
  }

  std::vector<std::string> tokens_;
  std::vector<uint8_t> present_;
  uint32_t byte_id_[256];
  U64Map<std::pair<uint32_t, uint32_t>> pairs_;
  BytesMap<uint32_t> whole_;  // token bytes -> id, for the whole-piece shortcut
  bool whole_piece_;
  bool rank_mode_;
  std::vector<std::pair<std::string, uint32_t>> specials_;
  PatternKind pattern_;

  mutable std::mutex cache_mu_;
  mutable std::vector<std::unique_ptr<PieceCache>> caches_;
};

}  // namespace tinygpt
