// Finding special-token strings in text, left to right (the longest wins at one position).
#pragma once

#include <string_view>
#include <utility>
#include <vector>

namespace tinygpt {

// Each string's next occurrence is remembered, so a string that is absent is searched for once
// per text, not once per occurrence of another: linear in the text, not quadratic.
class SpecialScanner {
 public:
  static constexpr size_t npos = std::string_view::npos;

  SpecialScanner(std::string_view text, std::vector<std::string_view> names)
      : text_(text), names_(std::move(names)), next_(names_.size()) {
    for (size_t k = 0; k < names_.size(); ++k) next_[k] = text_.find(names_[k]);
  }

  // The first occurrence at or after `from`: (position, index into names), or (npos, -1).
  std::pair<size_t, int> next(size_t from) {
    size_t best = npos;
    int found = -1;
    for (size_t k = 0; k < names_.size(); ++k) {
      if (next_[k] < from) next_[k] = text_.find(names_[k], from);
      if (next_[k] == npos) continue;
      if (next_[k] < best || (next_[k] == best && names_[k].size() > names_[found].size())) {
        best = next_[k];
        found = static_cast<int>(k);
      }
    }
    return {best, found};
  }

 private:
  std::string_view text_;
  std::vector<std::string_view> names_;
  std::vector<size_t> next_;
};

}  // namespace tinygpt
