#include "bpe.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "pretokenize.h"
#include "specials.h"
#include "split_pairs.h"

namespace tinygpt {

namespace {
constexpr uint32_t kNone = ~0u;
// Pieces up to this length go through the piece cache; longer ones are rare and would bloat it.
constexpr size_t kMaxCachedPiece = 64;
constexpr size_t kMaxCacheEntries = 1 << 18;
// Below this many bytes the quadratic scan beats the heap.
constexpr size_t kSmallPiece = 96;
}  // namespace

BPE::CacheLease::CacheLease(const BPE* owner) : owner_(owner) {
  std::lock_guard<std::mutex> g(owner_->cache_mu_);
  if (owner_->caches_.empty()) {
    cache_ = std::make_unique<PieceCache>();
  } else {
    cache_ = std::move(owner_->caches_.back());
    owner_->caches_.pop_back();
  }
}

BPE::CacheLease::~CacheLease() {
  if (cache_->map.size() > kMaxCacheEntries) {
    cache_->map.clear();
    cache_->ids.clear();
  }
  std::lock_guard<std::mutex> g(owner_->cache_mu_);
  owner_->caches_.push_back(std::move(cache_));
}

BPE::BPE(std::vector<std::string> tokens, std::vector<uint8_t> present, bool rank_mode,
         const std::vector<std::pair<uint32_t, uint32_t>>& merges,
         std::vector<std::pair<std::string, uint32_t>> specials, PatternKind pattern,
         bool whole_piece)
    : tokens_(std::move(tokens)),
      present_(std::move(present)),
      pairs_(rank_mode ? tokens_.size() * 2 : merges.size()),
      whole_(tokens_.size()),
      whole_piece_(whole_piece),
      rank_mode_(rank_mode),
      specials_(std::move(specials)),
      pattern_(pattern) {
  if (present_.size() != tokens_.size()) throw std::invalid_argument("tokens/present size mismatch");
  std::vector<uint8_t> is_special(tokens_.size(), 0);
  for (auto& [name, id] : specials_) {
    if (name.empty()) throw std::invalid_argument("a special token must not be empty");
    if (id >= tokens_.size() || !present_[id])
      throw std::invalid_argument("special token '" + name + "' has an unknown id");
    if (tokens_[id] != name)
      throw std::invalid_argument("special token '" + name + "' does not match its id's bytes");
    is_special[id] = 1;
  }
  for (int b = 0; b < 256; ++b) byte_id_[b] = kNone;
  for (uint32_t id = 0; id < tokens_.size(); ++id) {
    if (!present_[id] || is_special[id]) continue;
    const std::string& t = tokens_[id];
    if (t.empty()) throw std::invalid_argument("token " + std::to_string(id) + " is empty");
    bool inserted;
    uint32_t& slot = whole_.insert(t, &inserted);
    if (!inserted)
      throw std::invalid_argument("tokens " + std::to_string(slot) + " and " + std::to_string(id) +
                                  " have the same bytes");
    slot = id;
    if (t.size() == 1) byte_id_[static_cast<uint8_t>(t[0])] = id;
  }
  for (int b = 0; b < 256; ++b)
    if (byte_id_[b] == kNone)
      throw std::invalid_argument("the vocabulary has no token for byte " + std::to_string(b) +
                                  " (byte-level BPE needs all 256)");
  if (rank_mode_) {
    add_split_pairs(is_special);
  } else {
    for (size_t i = 0; i < merges.size(); ++i) {
      auto [a, b] = merges[i];
      if (a >= tokens_.size() || b >= tokens_.size() || !present_[a] || !present_[b])
        throw std::invalid_argument("merge " + std::to_string(i) + " names an unknown token id");
      uint32_t* m = whole_.find(tokens_[a] + tokens_[b]);
      if (!m)
        throw std::invalid_argument("merge " + std::to_string(i) +
                                    " yields a string that is not in the vocabulary");
      uint64_t key = (uint64_t{a} << 32) | b;
      if (!pairs_.find(key)) pairs_[key] = {*m, static_cast<uint32_t>(i)};
    }
  }
}

void BPE::add_split_pairs(const std::vector<uint8_t>& is_special) {
  std::vector<uint8_t> usable(tokens_.size());
  for (uint32_t id = 0; id < tokens_.size(); ++id) usable[id] = present_[id] && !is_special[id];
  for_each_split(tokens_, usable, whole_, [this](uint32_t l, uint32_t r, uint32_t id) {
    pairs_[(uint64_t{l} << 32) | r] = {id, id};
  });
}

void BPE::merge_small(const char* p, size_t n, std::vector<uint32_t>& out,
                      uint32_t max_priority) const {
  uint32_t ids[kSmallPiece], pri[kSmallPiece], merged[kSmallPiece];
  for (size_t i = 0; i < n; ++i) ids[i] = byte_id_[static_cast<uint8_t>(p[i])];
  auto rate = [&](size_t i) {
    const auto* m = lookup(ids[i], ids[i + 1]);
    if (m && m->second < max_priority) {
      pri[i] = m->second;
      merged[i] = m->first;
    } else {
      pri[i] = kNone;
    }
  };
  size_t m = n;
  for (size_t i = 0; i + 1 < m; ++i) rate(i);
  while (m > 1) {
    size_t best = 0;
    uint32_t bp = kNone;
    for (size_t i = 0; i + 1 < m; ++i)
      if (pri[i] < bp) {
        bp = pri[i];
        best = i;
      }
    if (bp == kNone) break;
    ids[best] = merged[best];
    size_t tail = m - best - 2;
    std::memmove(ids + best + 1, ids + best + 2, tail * sizeof(uint32_t));
    std::memmove(pri + best + 1, pri + best + 2, tail * sizeof(uint32_t));
    std::memmove(merged + best + 1, merged + best + 2, tail * sizeof(uint32_t));
    --m;
    if (best > 0) rate(best - 1);
    if (best + 1 < m) rate(best);
  }
  out.insert(out.end(), ids, ids + m);
}

void BPE::merge_large(const char* p, size_t n, std::vector<uint32_t>& out,
                      uint32_t max_priority) const {
  // Linked list of parts plus a lazy min-heap keyed (priority, position): O(n log n), so a
  // megabyte-long pre-token is no problem.
  std::vector<uint32_t> ids(n), next(n), prev(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i] = byte_id_[static_cast<uint8_t>(p[i])];
    next[i] = i + 1 < n ? static_cast<uint32_t>(i + 1) : kNone;
    prev[i] = i > 0 ? static_cast<uint32_t>(i - 1) : kNone;
  }
  struct Item {
    uint32_t pri, pos, left, right;
    bool operator>(const Item& o) const { return pri != o.pri ? pri > o.pri : pos > o.pos; }
  };
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  auto push = [&](uint32_t i) {
    uint32_t j = next[i];
    if (j == kNone) return;
    const auto* m = lookup(ids[i], ids[j]);
    if (m && m->second < max_priority) heap.push({m->second, i, ids[i], ids[j]});
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<uint8_t> dead(n, 0);
  while (!heap.empty()) {
    Item it = heap.top();
    heap.pop();
    uint32_t i = it.pos, j = next[i];
    if (dead[i] || j == kNone || ids[i] != it.left || ids[j] != it.right) continue;  // stale
    ids[i] = lookup(ids[i], ids[j])->first;
    dead[j] = 1;
    next[i] = next[j];
    if (next[j] != kNone) prev[next[j]] = i;
    if (prev[i] != kNone) push(prev[i]);
    push(i);
  }
  for (uint32_t i = 0; i != kNone; i = next[i]) out.push_back(ids[i]);
}

void BPE::merge_bytes(const char* p, size_t n, std::vector<uint32_t>& out,
                      uint32_t max_priority) const {
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_id_[static_cast<uint8_t>(p[0])]);
  } else if (n <= kSmallPiece) {
    merge_small(p, n, out, max_priority);
  } else {
    merge_large(p, n, out, max_priority);
  }
}

void BPE::encode_piece_cached(std::string_view piece, std::vector<uint32_t>& out,
                              PieceCache& cache) const {
  if (whole_piece_) {
    if (const uint32_t* id = whole_.find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  if (piece.size() > kMaxCachedPiece) {
    merge_bytes(piece.data(), piece.size(), out);
    return;
  }
  uint64_t h = hash_bytes(piece.data(), piece.size());
  if (auto* hit = cache.map.find(piece, h)) {
    out.insert(out.end(), cache.ids.begin() + hit->first,
               cache.ids.begin() + hit->first + hit->second);
    return;
  }
  size_t start = out.size();
  merge_bytes(piece.data(), piece.size(), out);
  auto& slot = cache.map.insert(piece, h);
  slot = {static_cast<uint32_t>(cache.ids.size()), static_cast<uint32_t>(out.size() - start)};
  cache.ids.insert(cache.ids.end(), out.begin() + start, out.end());
}

void BPE::encode_segment(std::string_view text, std::vector<uint32_t>& out,
                         PieceCache& cache) const {
  if (pattern_ == PatternKind::Custom)
    throw std::logic_error("custom patterns are split outside the native encoder");
  auto emit = [&](size_t b, size_t e) { encode_piece_cached(text.substr(b, e - b), out, cache); };
  pretok::split(pattern_ == PatternKind::GPT2 ? pretok::Pattern::GPT2 : pretok::Pattern::GPT4,
                text.data(), text.size(), emit);
}

void BPE::encode_piece(std::string_view piece, std::vector<uint32_t>& out) const {
  CacheLease lease(this);
  encode_piece_cached(piece, out, lease.cache());
}

std::vector<std::string_view> BPE::special_names(const std::vector<int>& which) const {
  std::vector<std::string_view> names;
  for (int s : which) names.push_back(specials_[s].first);
  return names;
}

int BPE::find_special(std::string_view text, const std::vector<int>& which) const {
  int k = SpecialScanner(text, special_names(which)).next(0).second;
  return k < 0 ? -1 : which[k];
}

void BPE::encode(std::string_view text, const std::vector<int>& allowed,
                 std::vector<uint32_t>& out, PieceCache& cache) const {
  // ~4 bytes per token on prose; grow geometrically since callers append text after text.
  size_t need = out.size() + text.size() / 3 + 16;
  if (out.capacity() < need) out.reserve(std::max(need, out.capacity() * 2));
  SpecialScanner scan(text, special_names(allowed));
  size_t cur = 0;
  for (auto [pos, k] = scan.next(0); k >= 0; std::tie(pos, k) = scan.next(cur)) {
    encode_segment(text.substr(cur, pos - cur), out, cache);
    out.push_back(specials_[allowed[k]].second);
    cur = pos + specials_[allowed[k]].first.size();
  }
  encode_segment(text.substr(cur), out, cache);
}

bool BPE::decode(const int64_t* ids, size_t n, std::string& out, int64_t* bad) const {
  for (size_t i = 0; i < n; ++i) {
    int64_t id = ids[i];
    if (!has_id(id)) {
      *bad = id;
      return false;
    }
    out += tokens_[id];
  }
  return true;
}

std::vector<std::pair<uint32_t, uint32_t>> BPE::derive_merges() const {
  if (!rank_mode_) throw std::logic_error("derive_merges needs a rank-mode vocabulary");
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  std::vector<uint32_t> parts;
  for (uint32_t id = 0; id < tokens_.size(); ++id) {
    if (!present_[id] || tokens_[id].size() < 2) continue;
    const uint32_t* w = whole_.find(tokens_[id]);
    if (!w || *w != id) continue;  // a special token
    parts.clear();
    merge_bytes(tokens_[id].data(), tokens_[id].size(), parts, id);
    if (parts.size() == 2) merges.emplace_back(parts[0], parts[1]);
  }
  return merges;
}

}  // namespace tinygpt
