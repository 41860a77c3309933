// BPE training: count pre-tokens ("words") in parallel, then merge the most frequent adjacent
// pair until the vocabulary is full. Ties are broken by the pair's ids, so the result depends only
// on the word counts, never on thread count or input order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bpe.h"
#include "hash.h"

namespace tinygpt {

class WordCounter {
 public:
  WordCounter(PatternKind pattern, std::vector<std::string> specials, int num_threads);

  // Counts the pre-tokens of each text; special-token strings are cut out first.
  void add_texts(const std::vector<std::string_view>& texts);
  // Streams a UTF-8 file in blocks, calling on_progress(bytes done so far) after each; throws
  // std::invalid_argument naming the file and byte offset of invalid UTF-8, std::runtime_error
  // if it cannot be read.
  void add_file(const std::string& path,
                const std::function<void(uint64_t)>& on_progress = nullptr);
  // For custom patterns, whose splitting happens in Python.
  void add_piece(std::string_view piece, uint64_t count);

  size_t num_words() const { return counts_.size(); }
  uint64_t num_bytes() const { return bytes_; }

  struct Result {
    std::vector<std::string> new_tokens;  // in creation order: ids 256, 257, ...
    std::vector<std::pair<uint32_t, uint32_t>> merges;
  };
  // Learns up to `num_new_tokens` tokens beyond the 256 bytes (fewer if the corpus runs out).
  Result train(size_t num_new_tokens) const;

 private:
  void count_chunks(const std::vector<std::string_view>& chunks);
  void cut_specials(std::string_view text, std::vector<std::string_view>& out) const;

  PatternKind pattern_;
  std::vector<std::string> specials_;
  int threads_;
  BytesMap<uint64_t> counts_{1 << 14};
  uint64_t bytes_ = 0;
};

}  // namespace tinygpt
