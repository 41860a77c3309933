// The merges implied by a rank-mode (tiktoken-style) vocabulary: every split of a token into two
// tokens is a merge that yields it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hash.h"

namespace tinygpt {

// Calls emit(left, right, token) for every token (usable[id] set) that is the concatenation of
// two usable tokens. `whole` maps each usable token's bytes to its id. Time is linear in the
// vocabulary's bytes plus, per token, the number of distinct token lengths below its own, however
// long the tokens are: hashing both halves at every split point would be quadratic in the longest
// token, which a long run of one character makes huge.
void for_each_split(const std::vector<std::string>& tokens, const std::vector<uint8_t>& usable,
                    const BytesMap<uint32_t>& whole,
                    const std::function<void(uint32_t, uint32_t, uint32_t)>& emit);

}  // namespace tinygpt
