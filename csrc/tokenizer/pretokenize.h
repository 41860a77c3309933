// Hand-written pre-tokenizer equivalent to `regex.findall(pattern, text)` for the GPT-2 and
// GPT-4 (cl100k) split patterns, without a regex engine:
//   gpt2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   gpt4: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
//         |\s++$|\s*[\r\n]|\s+(?!\S)|\s
// Every alternative reduces to "look at the first one or two characters, then take a maximal
// run of one class", so each piece is found in one forward pass (no backtracking, linear time).
// Character classes come from unicode_tables.h, generated from the `regex` module itself.
#pragma once

#include <cstddef>
#include <cstdint>

#include "unicode_tables.h"

namespace tinygpt::pretok {

enum class Pattern { GPT2, GPT4 };

namespace detail {

using tables::kLetter;
using tables::kNumber;
using tables::kOther;
using tables::kSpace;
constexpr uint8_t kEnd = 0xFF;  // class of the (absent) character past the end

#if defined(__GNUC__)
#define TINYGPT_PRETOK_LIKELY(x) __builtin_expect(!!(x), 1)
#define TINYGPT_PRETOK_NOINLINE __attribute__((noinline))
#else
#define TINYGPT_PRETOK_LIKELY(x) (x)
#define TINYGPT_PRETOK_NOINLINE
#endif

struct Ch {
  uint8_t cls;  // kOther / kLetter / kNumber / kSpace / kEnd
  uint8_t len;  // bytes
};

constexpr uint32_t kInvalid = 0xFFFFFFFFu;

// Strict UTF-8 decode of the non-ASCII character at p (p < e, *p >= 0x80). Overlongs,
// surrogates, > U+10FFFF, stray continuation bytes and truncated sequences yield kInvalid with
// len 1, so each such byte becomes its own "other" character.
inline uint32_t decode_wide(const uint8_t* p, const uint8_t* e, unsigned& len) {
  const uint8_t b0 = p[0];
  const size_t avail = static_cast<size_t>(e - p);
  len = 1;
  if (b0 < 0xC2) return kInvalid;  // continuation byte or overlong 2-byte lead
  if (b0 < 0xE0) {
    if (avail >= 2 && (p[1] & 0xC0) == 0x80) {
      len = 2;
      return (uint32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
    }
    return kInvalid;
  }
  if (b0 < 0xF0) {
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;  // E0: reject overlongs
    const uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;  // ED: reject surrogates
    if (avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80) {
      len = 3;
      return (uint32_t(b0 & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    }
    return kInvalid;
  }
  if (b0 < 0xF5) {
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;  // F0: reject overlongs
    const uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;  // F4: reject > U+10FFFF
    if (avail >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 &&
        (p[3] & 0xC0) == 0x80) {
      len = 4;
      return (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) |
             (uint32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
  }
  return kInvalid;
}

// Kept out of line: non-ASCII is rare in the hot loops, and this keeps them small.
TINYGPT_PRETOK_NOINLINE inline Ch peek_wide(const uint8_t* p, const uint8_t* e) {
  unsigned len;
  const uint32_t cp = decode_wide(p, e, len);
  return Ch{cp == kInvalid ? kOther : tables::class_of(cp), static_cast<uint8_t>(len)};
}

// Class and length of the character at p (p < e).
inline Ch peek(const uint8_t* p, const uint8_t* e) {
  if (TINYGPT_PRETOK_LIKELY(*p < 0x80)) return Ch{tables::kAsciiClass[*p], 1};
  return peek_wide(p, e);
}

inline Ch peek_or_end(const uint8_t* p, const uint8_t* e) {
  return p < e ? peek(p, e) : Ch{kEnd, 0};
}

// End of the maximal run of class `cls` starting at p.
inline const uint8_t* scan_run(const uint8_t* p, const uint8_t* e, uint8_t cls) {
  while (p < e) {
    const uint8_t b = *p;
    if (TINYGPT_PRETOK_LIKELY(b < 0x80)) {
      if (tables::kAsciiClass[b] != cls) break;
      ++p;
    } else {
      const Ch c = peek_wide(p, e);
      if (c.cls != cls) break;
      p += c.len;
    }
  }
  return p;
}

// Lowercase ASCII contraction letter that `(?i:x)` would match at p (0 if none); sets len.
inline uint8_t fold_letter(const uint8_t* p, const uint8_t* e, unsigned& len) {
  if (*p < 0x80) {
    len = 1;
    return tables::kAsciiFold[*p];
  }
  const uint32_t cp = decode_wide(p, e, len);
  for (int i = 0; i < tables::kNumWideFolds; ++i)
    if (tables::kWideFolds[i].cp == cp) return static_cast<uint8_t>(tables::kWideFolds[i].letter);
  return 0;
}

inline bool is_crlf(uint8_t b) { return b == '\r' || b == '\n'; }

// Length of a gpt2 contraction at p (*p == '\''), else 0. Case-sensitive, ASCII only.
inline size_t gpt2_contraction(const uint8_t* p, const uint8_t* e) {
  if (e - p < 2) return 0;
  const uint8_t c1 = p[1];
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (e - p < 3) return 0;
  const uint8_t c2 = p[2];
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// Length in bytes of a gpt4 contraction `'(?i:[sdmt]|ll|ve|re)` at p (*p == '\''), else 0.
// Case-insensitive per regex's simple case folding (so "'\u017F" counts as "'s").
inline size_t gpt4_contraction(const uint8_t* p, const uint8_t* e) {
  if (e - p < 2) return 0;
  unsigned l1, l2;
  const uint8_t f1 = fold_letter(p + 1, e, l1);
  if (f1 == 's' || f1 == 'd' || f1 == 'm' || f1 == 't') return 1 + l1;
  if (f1 != 'l' && f1 != 'v' && f1 != 'r') return 0;
  const uint8_t* q = p + 1 + l1;
  if (q >= e) return 0;
  const uint8_t f2 = fold_letter(q, e, l2);
  if (f2 == (f1 == 'l' ? 'l' : 'e')) return 1 + l1 + l2;
  return 0;
}

template <class Emit>
inline void split_gpt2(const uint8_t* s, const uint8_t* e, Emit& emit) {
  const uint8_t* p = s;
  while (p < e) {
    const uint8_t* start = p;
    if (*p == '\'') {
      if (size_t k = gpt2_contraction(p, e)) {
        p += k;
        emit(static_cast<size_t>(start - s), static_cast<size_t>(p - s));
        continue;
      }
    }
    Ch c = peek(p, e);
    const uint8_t* q = p + c.len;
    // " ?X+" for X in {L, N, other}: a single ASCII space joins the run that follows it.
    if (*p == ' ' && q < e) {
      const Ch c1 = peek(q, e);
      if (c1.cls != kSpace) {
        c = c1;
        q += c1.len;
      }
    }
    if (c.cls != kSpace) {
      p = scan_run(q, e, c.cls);
    } else {
      // \s+(?!\S) backtracks one character before a non-space (so a trailing ' ' can join the
      // next word); a lone whitespace char before a non-space falls through to \s+.
      const uint8_t* last = p;  // start of the last whitespace char of the run
      q = p;
      while (q < e) {
        const Ch w = peek(q, e);
        if (w.cls != kSpace) break;
        last = q;
        q += w.len;
      }
      p = (q < e && last != start) ? last : q;
    }
    emit(static_cast<size_t>(start - s), static_cast<size_t>(p - s));
  }
}

template <class Emit>
inline void split_gpt4(const uint8_t* s, const uint8_t* e, Emit& emit) {
  const uint8_t* p = s;
  while (p < e) {
    const uint8_t* start = p;
    const uint8_t b = *p;
    if (b == '\'') {
      if (size_t k = gpt4_contraction(p, e)) {
        p += k;
        emit(static_cast<size_t>(start - s), static_cast<size_t>(p - s));
        continue;
      }
    }
    const Ch c = peek(p, e);
    if (c.cls == kLetter) {  // \p{L}++ (empty prefix)
      p = scan_run(p + c.len, e, kLetter);
    } else if (c.cls == kNumber) {  // \p{N}{1,3}+
      p += c.len;
      for (int k = 0; k < 2 && p < e; ++k) {
        const Ch d = peek(p, e);
        if (d.cls != kNumber) break;
        p += d.len;
      }
    } else {
      const uint8_t* q = p + c.len;
      const Ch c1 = peek_or_end(q, e);
      if (c1.cls == kLetter && !is_crlf(b)) {
        // [^\r\n\p{L}\p{N}]?+\p{L}++ : any other/whitespace char except CR/LF prefixes a word.
        p = scan_run(q + c1.len, e, kLetter);
      } else if (c.cls == kOther || (b == ' ' && c1.cls == kOther)) {
        // " ?[^\s\p{L}\p{N}]++[\r\n]*+"
        if (c.cls != kOther) q += c1.len;
        q = scan_run(q, e, kOther);
        while (q < e && is_crlf(*q)) ++q;
        p = q;
      } else {
        // Whitespace run [p, q): \s++$ takes it all at end of text (possessive, so `$` before
        // a final "\n" never matters); else \s*[\r\n] ends after its last CR/LF; else
        // \s+(?!\S) leaves the last char; else a lone \s.
        const uint8_t* last = p;
        const uint8_t* nl_end = nullptr;
        q = p;
        while (q < e) {
          const Ch w = peek(q, e);
          if (w.cls != kSpace) break;
          last = q;
          if (is_crlf(*q)) nl_end = q + 1;
          q += w.len;
        }
        if (q == e) {
          p = q;
        } else if (nl_end) {
          p = nl_end;
        } else if (last != start) {
          p = last;
        } else {
          p = q;
        }
      }
    }
    emit(static_cast<size_t>(start - s), static_cast<size_t>(p - s));
  }
}

}  // namespace detail

// Splits the UTF-8 text [text, text+n) into pre-tokens, calling emit(begin, end) (byte offsets,
// size_t) for each piece in order; the pieces tile the text. Bytes that are not part of a valid
// UTF-8 sequence (including overlong forms, surrogates, > U+10FFFF, truncated sequences) are each
// treated as one character of the "other" class (not letter, not number, not whitespace).
template <class Emit>
inline void split(Pattern p, const char* text, size_t n, Emit&& emit) {
  const auto* s = reinterpret_cast<const uint8_t*>(text);
  if (p == Pattern::GPT2)
    detail::split_gpt2(s, s + n, emit);
  else
    detail::split_gpt4(s, s + n, emit);
}

}  // namespace tinygpt::pretok

#undef TINYGPT_PRETOK_LIKELY
#undef TINYGPT_PRETOK_NOINLINE
