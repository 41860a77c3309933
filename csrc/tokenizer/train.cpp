#include "train.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <stdexcept>
#include <tuple>

#include "pretokenize.h"
#include "specials.h"
#include "utf8.h"
#include "worker_pool.h"

namespace tinygpt {

namespace {

bool ascii_letter(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

constexpr size_t kChunk = 1 << 20;
constexpr size_t kFileBlock = 8 << 20;

// A cut between "x" and " y" (ASCII letters) never splits a pre-token of either built-in
// pattern, and the pieces on both sides are the same as in the whole text. Returns the last such
// cut in [lo, hi), or npos.
size_t last_safe_cut(std::string_view t, size_t lo, size_t hi) {
  if (hi + 1 >= t.size()) hi = t.size() >= 2 ? t.size() - 2 : 0;
  for (size_t p = hi; p > lo; --p)
    if (t[p] == ' ' && ascii_letter(t[p - 1]) && ascii_letter(t[p + 1])) return p;
  return std::string_view::npos;
}

// Reused buffers for merge_in_word.
struct MergeScratch {
  std::vector<uint32_t> fresh;
  std::vector<uint8_t> merged, formed;
};

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

// Replaces each (a, b) in `sym`, left to right, with c, and reports the change in pair counts as
// update(pair, -n) for each pair that is gone and update(pair, +n) for each new one (n: the
// word's count). Only pairs next to a merge change, so the hash-table work is proportional to
// the merges made, not to the word's length: a long pre-token (a run of one character, a blob of
// base64) stays cheap however many merges touch it.
template <class Update>
void merge_in_word(std::vector<uint32_t>& sym, uint32_t a, uint32_t b, uint32_t c, int64_t n,
                   MergeScratch& s, Update&& update) {
  const size_t len = sym.size();
  s.merged.assign(len, 0);
  s.fresh.clear();
  s.formed.clear();
  for (size_t i = 0; i < len; ++i) {
    const bool hit = i + 1 < len && sym[i] == a && sym[i + 1] == b;
    if (hit) s.merged[i] = s.merged[i + 1] = 1;
    s.fresh.push_back(hit ? c : sym[i]);
    s.formed.push_back(hit);
    i += hit;
  }
  if (s.fresh.size() == len) return;  // no (a, b) in this word
  for (size_t i = 0; i + 1 < len; ++i)
    if (s.merged[i] || s.merged[i + 1]) update(pair_key(sym[i], sym[i + 1]), -n);
  for (size_t j = 0; j + 1 < s.fresh.size(); ++j)
    if (s.formed[j] || s.formed[j + 1]) update(pair_key(s.fresh[j], s.fresh[j + 1]), n);
  sym.assign(s.fresh.begin(), s.fresh.end());
}

}  // namespace

WordCounter::WordCounter(PatternKind pattern, std::vector<std::string> specials, int num_threads)
    : pattern_(pattern), specials_(std::move(specials)), threads_(std::max(1, num_threads)) {}

void WordCounter::cut_specials(std::string_view text, std::vector<std::string_view>& out) const {
  SpecialScanner scan(text, {specials_.begin(), specials_.end()});
  size_t cur = 0;
  for (auto [pos, k] = scan.next(0); k >= 0; std::tie(pos, k) = scan.next(cur)) {
    if (pos > cur) out.push_back(text.substr(cur, pos - cur));
    cur = pos + specials_[k].size();
  }
  if (cur < text.size()) out.push_back(text.substr(cur));
}

void WordCounter::count_chunks(const std::vector<std::string_view>& segments) {
  if (pattern_ == PatternKind::Custom)
    throw std::logic_error("custom patterns are counted in Python");
  // Cut long segments at safe points so that both threads get work.
  std::vector<std::string_view> chunks;
  size_t total = 0;
  for (std::string_view s : segments) {
    total += s.size();
    while (s.size() > 2 * kChunk) {
      size_t cut = last_safe_cut(s, kChunk / 2, kChunk);
      if (cut == std::string_view::npos) cut = last_safe_cut(s, kChunk, s.size());
      if (cut == std::string_view::npos) break;
      chunks.push_back(s.substr(0, cut));
      s = s.substr(cut);
    }
    chunks.push_back(s);
  }
  bytes_ += total;
  const pretok::Pattern pat =
      pattern_ == PatternKind::GPT2 ? pretok::Pattern::GPT2 : pretok::Pattern::GPT4;
  auto count_range = [&](size_t lo, size_t hi, BytesMap<uint64_t>& into) {
    for (size_t c = lo; c < hi; ++c) {
      std::string_view t = chunks[c];
      pretok::split(pat, t.data(), t.size(),
                    [&](size_t b, size_t e) { into.insert(t.substr(b, e - b)) += 1; });
    }
  };
  int nt = threads_;
  if (total < (256u << 10) || chunks.size() < 2) nt = 1;
  nt = std::min<int>(nt, static_cast<int>(chunks.size()));
  if (nt <= 1) {
    count_range(0, chunks.size(), counts_);
    return;
  }
  // Contiguous ranges of about equal bytes per thread; counts are sums, so any split gives the
  // same totals.
  std::vector<size_t> bounds{0};
  size_t acc = 0, per = total / nt + 1;
  for (size_t c = 0; c < chunks.size(); ++c) {
    acc += chunks[c].size();
    if (acc >= per * bounds.size() && static_cast<int>(bounds.size()) < nt) bounds.push_back(c + 1);
  }
  bounds.push_back(chunks.size());
  std::vector<BytesMap<uint64_t>> local(bounds.size() - 1, BytesMap<uint64_t>(1 << 14));
  WorkerPool::run(static_cast<int>(local.size()),
                  [&](int t) { count_range(bounds[t], bounds[t + 1], local[t]); });
  for (auto& m : local) m.for_each([&](std::string_view k, uint64_t v) { counts_.insert(k) += v; });
}

void WordCounter::add_texts(const std::vector<std::string_view>& texts) {
  std::vector<std::string_view> segments;
  for (std::string_view t : texts) cut_specials(t, segments);
  count_chunks(segments);
}

void WordCounter::add_piece(std::string_view piece, uint64_t count) {
  if (piece.empty() || count == 0) return;
  counts_.insert(piece) += count;
  bytes_ += piece.size() * count;
}

void WordCounter::add_file(const std::string& path,
                           const std::function<void(uint64_t)>& on_progress) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open '" + path + "'");
  std::string buf;
  uint64_t buf_offset = 0;  // file offset of buf[0]
  bool eof = false;
  try {
    while (!eof) {
      size_t old = buf.size();
      buf.resize(old + kFileBlock);
      size_t got = std::fread(&buf[old], 1, kFileBlock, f);
      buf.resize(old + got);
      if (got < kFileBlock) {
        if (std::ferror(f)) throw std::runtime_error("error reading '" + path + "'");
        eof = true;
      }
      size_t cut = buf.size();
      if (!eof) {
        cut = last_safe_cut(buf, old > 64 ? old - 64 : 0, buf.size());
        // A special token must not straddle the cut.
        while (cut != std::string_view::npos) {
          bool straddles = false;
          for (const auto& s : specials_) {
            size_t from = cut >= s.size() ? cut - s.size() + 1 : 0;
            size_t pos = std::string_view(buf).find(s, from);
            if (pos != std::string_view::npos && pos < cut) straddles = true;
          }
          if (!straddles) break;
          cut = cut > 0 ? last_safe_cut(buf, 0, cut - 1) : std::string_view::npos;
        }
        if (cut == std::string_view::npos) continue;  // no safe cut yet: read more
      }
      size_t bad = utf8_valid_prefix(buf.data(), cut);
      if (bad != cut)
        throw std::invalid_argument("'" + path + "' is not valid UTF-8 at byte offset " +
                                    std::to_string(buf_offset + bad));
      std::vector<std::string_view> segments;
      cut_specials(std::string_view(buf).substr(0, cut), segments);
      count_chunks(segments);
      buf.erase(0, cut);
      buf_offset += cut;
      if (on_progress) on_progress(buf_offset);
    }
  } catch (...) {
    std::fclose(f);
    throw;
  }
  std::fclose(f);
}

WordCounter::Result WordCounter::train(size_t num_new_tokens) const {
  // Words in byte order, so that nothing below depends on hash-table layout.
  std::vector<std::pair<std::string_view, uint64_t>> sorted;
  sorted.reserve(counts_.size());
  counts_.for_each([&](std::string_view k, uint64_t v) { sorted.emplace_back(k, v); });
  std::sort(sorted.begin(), sorted.end());

  std::vector<std::vector<uint32_t>> words(sorted.size());
  std::vector<int64_t> wcount(sorted.size());
  U64Map<int64_t> pair_count(1 << 16);
  U64Map<std::vector<uint32_t>> where(1 << 16);
  for (size_t w = 0; w < sorted.size(); ++w) {
    auto& sym = words[w];
    for (unsigned char c : sorted[w].first) sym.push_back(c);
    wcount[w] = static_cast<int64_t>(sorted[w].second);
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      uint64_t k = pair_key(sym[i], sym[i + 1]);
      pair_count[k] += wcount[w];
      auto& wl = where[k];
      if (wl.empty() || wl.back() != w) wl.push_back(static_cast<uint32_t>(w));
    }
  }

  struct Entry {
    int64_t count;
    uint64_t pair;
    // Max-heap on count; among equal counts the smaller pair wins.
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };
  std::priority_queue<Entry> heap;
  pair_count.for_each([&](uint64_t k, int64_t c) {
    if (c > 0) heap.push({c, k});
  });

  Result res;
  std::vector<std::string> tok(256);
  BytesMap<uint32_t> tok_id(1024);
  for (int b = 0; b < 256; ++b) {
    tok[b] = std::string(1, static_cast<char>(b));
    tok_id.insert(tok[b]) = b;
  }
  std::vector<uint32_t> stamp(words.size(), 0);
  uint32_t round = 0;
  std::vector<uint64_t> touched;
  MergeScratch scratch;
  while (res.new_tokens.size() < num_new_tokens && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    int64_t* cur = pair_count.find(top.pair);
    if (!cur || *cur != top.count) {  // stale entry: requeue with the live count
      if (cur && *cur > 0) heap.push({*cur, top.pair});
      continue;
    }
    uint32_t a = static_cast<uint32_t>(top.pair >> 32), b = static_cast<uint32_t>(top.pair);
    std::string bytes = tok[a] + tok[b];
    bool inserted;
    uint32_t& slot = tok_id.insert(bytes, &inserted);
    if (inserted) {
      slot = static_cast<uint32_t>(tok.size());
      tok.push_back(bytes);
      res.new_tokens.push_back(bytes);
    }
    const uint32_t c = slot;
    res.merges.emplace_back(a, b);

    ++round;
    touched.clear();
    std::vector<uint32_t> wl = std::move(where[top.pair]);
    where[top.pair] = {};
    for (uint32_t w : wl) {
      if (stamp[w] == round) continue;
      stamp[w] = round;
      merge_in_word(words[w], a, b, c, wcount[w], scratch, [&](uint64_t k, int64_t delta) {
        pair_count[k] += delta;
        if (delta > 0) {
          auto& l = where[k];
          if (l.empty() || l.back() != w) l.push_back(w);
          touched.push_back(k);
        }
      });
    }
    // Only pairs with the new token can have grown; the others keep stale (higher) heap
    // entries, corrected lazily when popped.
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      int64_t v = *pair_count.find(k);
      if (v > 0) heap.push({v, k});
    }
  }
  return res;
}

}  // namespace tinygpt
