// Python bindings of the tokenizer core. The public API lives in tinygpt/tokenizer.py; these
// are its thin native half. Long calls release the GIL.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>

#include "bpe.h"
#include "pretokenize.h"
#include "train.h"
#include "worker_pool.h"

namespace py = pybind11;

namespace tinygpt {
namespace {

PatternKind parse_pattern(const std::string& name) {
  if (name == "gpt2") return PatternKind::GPT2;
  if (name == "gpt4") return PatternKind::GPT4;
  if (name == "custom") return PatternKind::Custom;
  throw std::invalid_argument("unknown pattern kind '" + name + "'");
}

std::string_view utf8_of(const py::handle& s) {
  if (!PyUnicode_Check(s.ptr())) 
    throw py::type_error(std::string("expected str, got ") + Py_TYPE(s.ptr())->tp_name);
  Py_ssize_t n;
  const char* p = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
  if (!p) throw py::error_already_set();  // e.g. lone surrogates
  return {p, static_cast<size_t>(n)};
}

std::string_view bytes_of(const py::handle& b) {
  char* p;
  Py_ssize_t n;
  if (PyBytes_Check(b.ptr())) {
    PyBytes_AsStringAndSize(b.ptr(), &p, &n);
    return {p, static_cast<size_t>(n)};
  }
  throw py::type_error("expected bytes");
}

// Python ints for every id, so that building result lists costs one increment per token.
class IntCache {
 public:
  explicit IntCache(size_t n) {
    objs_.reserve(n);
    for (size_t i = 0; i < n; ++i) objs_.push_back(py::int_(i));
  }
  py::list to_list(const std::vector<uint32_t>& ids) const { return to_list(ids.data(), ids.size()); }
  py::list to_list(const uint32_t* ids, size_t n) const {
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(n));
    if (!list) throw py::error_already_set();
    for (size_t i = 0; i < n; ++i) {
      PyObject* o = objs_[ids[i]].ptr();
      Py_INCREF(o);
      PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), o);
    }
    return py::reinterpret_steal<py::list>(list);
  }

 private:
  std::vector<py::object> objs_;
};

struct PyBPE {
  BPE bpe;
  IntCache ints;

  PyBPE(const py::list& tokens, bool rank_mode,
        const std::vector<std::pair<uint32_t, uint32_t>>& merges,
        std::vector<std::pair<std::string, uint32_t>> specials, const std::string& pattern,
        bool whole_piece)
      : bpe(make(tokens, rank_mode, merges, std::move(specials), pattern, whole_piece)),
        ints(bpe.id_limit()) {}

  static BPE make(const py::list& tokens, bool rank_mode,
                  const std::vector<std::pair<uint32_t, uint32_t>>& merges,
                  std::vector<std::pair<std::string, uint32_t>> specials, const std::string& pattern,
                  bool whole_piece) {
    std::vector<std::string> toks(tokens.size());
    std::vector<uint8_t> present(tokens.size(), 0);
    for (size_t i = 0; i < tokens.size(); ++i) {
      py::handle t = tokens[i];
      if (t.is_none()) continue;
      toks[i] = std::string(bytes_of(t));
      present[i] = 1;
    }
    return BPE(std::move(toks), std::move(present), rank_mode, merges, std::move(specials),
               parse_pattern(pattern), whole_piece);
  }

  void check_disallowed(std::string_view text, const std::vector<int>& disallowed) const {
    if (disallowed.empty()) return;
    int s = bpe.find_special(text, disallowed);
    if (s >= 0)
      throw py::value_error("the text contains the special token '" + bpe.specials()[s].first +
                            "', which is not allowed: pass allowed_special={'" +
                            bpe.specials()[s].first + "'} (or \"all\") to encode it as a special "
                            "token, or disallowed_special=() to encode it as plain text");
  }

  void check_indices(const std::vector<int>& idx) const {
    for (int i : idx)
      if (i < 0 || static_cast<size_t>(i) >= bpe.specials().size())
        throw py::index_error("special token index out of range");
  }

  py::list encode(const py::str& text, const std::vector<int>& allowed,
                  const std::vector<int>& disallowed) {
    check_indices(allowed);
    check_indices(disallowed);
    std::string_view t = utf8_of(text);
    std::vector<uint32_t> out;
    {
      py::gil_scoped_release nogil;
      check_disallowed(t, disallowed);
      bpe.encode(t, allowed, out);
    }
    return ints.to_list(out);
  }

  py::list encode_bytes(const py::bytes& data) {
    std::string_view t = bytes_of(data);
    std::vector<uint32_t> out;
    {
      py::gil_scoped_release nogil;
      bpe.encode(t, {}, out);
    }
    return ints.to_list(out);
  }

  py::list encode_pieces(const py::list& pieces) {
    std::vector<std::string_view> views;
    views.reserve(pieces.size());
    for (py::handle p : pieces) views.push_back(bytes_of(p));
    std::vector<uint32_t> out;
    {
      py::gil_scoped_release nogil;
      for (auto v : views) bpe.encode_piece(v, out);
    }
    return ints.to_list(out);
  }

  // One block of whole texts: their ids back to back, and where each text's ids end.
  struct Block {
    std::vector<uint32_t> ids;
    std::vector<size_t> ends;
  };

  // The str items of `texts` as UTF-8 views (kept alive by `texts`), and their total size.
  static std::vector<std::string_view> views_of(const py::list& texts, size_t& total) {
    std::vector<std::string_view> views;
    views.reserve(texts.size());
    total = 0;
    for (py::handle t : texts) {
      if (!PyUnicode_Check(t.ptr()))
        throw py::type_error("texts[" + std::to_string(views.size()) + "] must be str, got " +
                             Py_TYPE(t.ptr())->tp_name);
      views.push_back(utf8_of(t));
      total += views.back().size();
    }
    return views;
  }

  // Encodes the texts in blocks handed out dynamically to up to `num_threads` threads, with the
  // GIL released. `on_ready(b)` runs on the calling thread, with the GIL held, for each finished
  // block in order, while the other threads go on encoding.
  void parallel_encode(const std::vector<std::string_view>& views, size_t total,
                                      const std::vector<int>& allowed, const std::vector<int>& disallowed,
                                      int num_threads, std::vector<Block>& outs,
                                      const std::function<void(size_t)>& on_ready) {
    check_indices(allowed);
    check_indices(disallowed);
    const size_t n = views.size();
    const size_t nt = total < (64u << 10) ? 1 : std::max(1, std::min<int>(num_threads, static_cast<int>(n)));
    std::vector<size_t> block{0};
    const size_t block_bytes = std::max<size_t>(16u << 10, total / (nt * 32) + 1);
    for (size_t i = 0, acc = 0; i < n; ++i) {
      acc += views[i].size();
      if (acc >= block_bytes && i + 1 < n) {
        block.push_back(i + 1);
        acc = 0;
      }
    }
    block.push_back(n);
    const size_t nblocks = block.size() - 1;
    outs.assign(nblocks, Block());
    std::vector<std::string> errors(nblocks);
    std::unique_ptr<std::atomic<bool>[]> done(new std::atomic<bool>[nblocks]);
    for (size_t b = 0; b < nblocks; ++b) done[b] = false;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    auto run_block = [&](size_t b, PieceCache& cache) {
      try {
        Block out;  // filled locally: neighbouring blocks belong to other threads (false sharing)
        out.ends.reserve(block[b + 1] - block[b]);
        for (size_t i = block[b]; i < block[b + 1] && !failed; ++i) {
          check_disallowed(views[i], disallowed);
          bpe.encode(views[i], allowed, out.ids, cache);
          out.ends.push_back(out.ids.size());
        }
        outs[b] = std::move(out);
      } catch (const std::exception& e) {
        errors[b] = e.what();
        failed = true;
      }
      done[b].store(true, std::memory_order_release);
    };
    size_t converted = 0;  // blocks already handed to on_ready, in order
    auto convert_ready = [&] {
      if (!on_ready || failed || converted == nblocks || !done[converted].load(std::memory_order_acquire))
        return;
      py::gil_scoped_acquire gil;
      while (converted < nblocks && done[converted].load(std::memory_order_acquire)) on_ready(converted++);
    };
    {
      py::gil_scoped_release nogil;
      WorkerPool::run(static_cast<int>(nt), [&](int t) {
        BPE::CacheLease lease(&bpe);
        for (size_t b; (b = next++) < nblocks;) {
          run_block(b, lease.cache());
          if (t == 0) convert_ready();
        }
      });
      while (on_ready && !failed && converted < nblocks) convert_ready();
    }
    for (auto& e : errors)
      if (!e.empty()) throw py::value_error(e);
  }

  py::list encode_batch(const py::list& texts, const std::vector<int>& allowed,
                        const std::vector<int>& disallowed, int num_threads) {
    size_t total;
    auto views = views_of(texts, total);
    py::list result(views.size());
    std::vector<Block> outs;
    // Python lists of finished blocks are built while other threads still encode (the list
    // building needs the GIL, the encoding does not).
    parallel_encode(views, total, allowed, disallowed, num_threads, outs, [&](size_t b) {
      size_t start = 0;
      for (size_t i = first_text(outs, b), k = 0; k < outs[b].ends.size(); ++i, ++k) {
        size_t end = outs[b].ends[k];
        PyList_SET_ITEM(result.ptr(), static_cast<Py_ssize_t>(i),
                        ints.to_list(outs[b].ids.data() + start, end - start).release().ptr());
        start = end;
      }
      Block().ids.swap(outs[b].ids);
    });
    return result;
  }

  // Index of block b's first text: the texts of the blocks before it, which are all finished.
  static size_t first_text(const std::vector<Block>& outs, size_t b) {
    size_t i = 0;
    for (size_t k = 0; k < b; ++k) i += outs[k].ends.size();
    return i;
  }

  // All texts' ids as one native-endian uint32 buffer, with `sep` after each text when sep >= 0:
  // what a shard file holds, without a Python int per token.
  py::bytes encode_batch_flat(const py::list& texts, const std::vector<int>& allowed,
                              const std::vector<int>& disallowed, int num_threads, int64_t sep) {
    if (sep >= static_cast<int64_t>(bpe.id_limit()))
      throw py::value_error("separator id " + std::to_string(sep) + " is not in the vocabulary");
    size_t total;
    auto views = views_of(texts, total);
    std::vector<Block> outs;
    parallel_encode(views, total, allowed, disallowed, num_threads, outs, nullptr);
    size_t n = 0;
    for (auto& o : outs) n += o.ids.size() + (sep >= 0 ? o.ends.size() : 0);
    py::bytes result(py::reinterpret_steal<py::bytes>(PyBytes_FromStringAndSize(nullptr, n * 4)));
    if (!result) throw py::error_already_set();
    auto* dst = reinterpret_cast<uint32_t*>(PyBytes_AS_STRING(result.ptr()));
    for (auto& o : outs) {
      size_t start = 0;
      for (size_t end : o.ends) {
        std::memcpy(dst, o.ids.data() + start, (end - start) * 4);
        dst += end - start;
        if (sep >= 0) *dst++ = static_cast<uint32_t>(sep);
        start = end;
      }
    }
    return result;
  }

  py::bytes decode_bytes(const py::handle& ids) {
    PyObject* seq = PySequence_Fast(ids.ptr(), "token ids must be a sequence of ints");
    if (!seq) throw py::error_already_set();
    auto guard = py::reinterpret_steal<py::object>(seq);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* o = items[i];
      if (!PyLong_Check(o))
        throw py::type_error("token ids must be ints, got " +
                             std::string(Py_TYPE(o)->tp_name) + " at position " + std::to_string(i));
      int overflow = 0;
      long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
      v[i] = overflow ? -1 : x;
    }
    std::string out;
    int64_t bad = 0;
    bool ok;
    {
      py::gil_scoped_release nogil;
      out.reserve(v.size() * 4);
      ok = bpe.decode(v.data(), v.size(), out, &bad);
    }
    if (!ok)
      throw py::value_error("token id " + std::to_string(bad) + " is not in the vocabulary (ids go up to " +
                            std::to_string(bpe.id_limit() - 1) + ")");
    return py::bytes(out);
  }
};

}  // namespace

void bind_tokenizer(py::module_& m) {
  m.def(
      "pretokenize_offsets",
      [](const std::string& pattern, const py::bytes& data) {
        PatternKind k = parse_pattern(pattern);
        if (k == PatternKind::Custom) throw py::value_error("only built-in patterns split natively");
        std::string_view t = bytes_of(data);
        std::vector<std::pair<size_t, size_t>> out;
        pretok::split(k == PatternKind::GPT2 ? pretok::Pattern::GPT2 : pretok::Pattern::GPT4,
                      t.data(), t.size(), [&](size_t b, size_t e) { out.emplace_back(b, e); });
        return out;
      },
      py::arg("pattern"), py::arg("data"),
      "Byte offsets (begin, end) of the pre-tokens of UTF-8 data under a built-in pattern.");

  py::class_<PyBPE>(m, "BPE")
      .def(py::init<const py::list&, bool, const std::vector<std::pair<uint32_t, uint32_t>>&,
                    std::vector<std::pair<std::string, uint32_t>>, const std::string&, bool>(),
           py::arg("tokens"), py::arg("rank_mode"), py::arg("merges"), py::arg("specials"),
           py::arg("pattern"), py::arg("whole_piece"))
      .def("encode", &PyBPE::encode, py::arg("text"), py::arg("allowed"), py::arg("disallowed"))
      .def("encode_bytes", &PyBPE::encode_bytes, py::arg("data"))
      .def("encode_pieces", &PyBPE::encode_pieces, py::arg("pieces"))
      .def("encode_batch_flat", &PyBPE::encode_batch_flat, py::arg("texts"), py::arg("allowed"),
           py::arg("disallowed"), py::arg("num_threads"), py::arg("sep"))
      .def("encode_batch", &PyBPE::encode_batch, py::arg("texts"), py::arg("allowed"),
           py::arg("disallowed"), py::arg("num_threads"))
      .def("decode_bytes", &PyBPE::decode_bytes, py::arg("ids"))
      .def("derive_merges", [](PyBPE& self) { return self.bpe.derive_merges(); });

  py::class_<WordCounter>(m, "WordCounter")
      .def(py::init([](const std::string& pattern, std::vector<std::string> specials, int threads) {
             return new WordCounter(parse_pattern(pattern), std::move(specials), threads);
           }),
           py::arg("pattern"), py::arg("specials"), py::arg("num_threads"))
      .def("add_texts",
           [](WordCounter& self, const py::list& texts) {
             std::vector<std::string_view> views;
             views.reserve(texts.size());
             for (py::handle t : texts) views.push_back(utf8_of(t));
             py::gil_scoped_release nogil;
             self.add_texts(views);
           })
      .def(
          "add_file",
          [](WordCounter& self, const std::string& path, py::object on_progress) {
            std::function<void(uint64_t)> cb;
            if (!on_progress.is_none())
              cb = [&on_progress](uint64_t done) {
                py::gil_scoped_acquire gil;
                on_progress(done);
              };
            py::gil_scoped_release nogil;
            self.add_file(path, cb);
          },
          py::arg("path"), py::arg("on_progress") = py::none())
      .def("add_piece", [](WordCounter& self, const py::bytes& piece,
                           uint64_t count) { self.add_piece(bytes_of(piece), count); })
      .def_property_readonly("num_words", &WordCounter::num_words)
      .def_property_readonly("num_bytes", &WordCounter::num_bytes)
      .def("train", [](const WordCounter& self, size_t n) {
        WordCounter::Result r;
        {
          py::gil_scoped_release nogil;
          r = self.train(n);
        }
        py::list toks;
        for (auto& t : r.new_tokens) toks.append(py::bytes(t));
        return py::make_tuple(toks, r.merges);
      });
}

}  // namespace tinygpt
