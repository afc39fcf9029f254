#include "tokenizer/pipeline.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace taia {

// A span of text on its way through normalizers and pre-tokenizers, with the input byte
// offset of each of its bytes (empty align: byte i comes from input offset base + i).
struct PipelineTokenizer::Piece {
  std::string text;
  uint32_t base = 0;
  std::vector<uint32_t> align;

  uint32_t origin(size_t i) const {
    if (align.empty()) return base + uint32_t(i);
    return i < align.size() ? align[i] : align.back();
  }
  std::vector<uint32_t> full_align() const {
    if (!align.empty()) return align;
    std::vector<uint32_t> a(text.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = base + uint32_t(i);
    return a;
  }
  Piece sub(size_t b, size_t e) const {
    Piece p;
    p.text = text.substr(b, e - b);
    if (align.empty())
      p.base = base + uint32_t(b);
    else {
      p.align.assign(align.begin() + long(b), align.begin() + long(e));
      p.base = p.align.empty() ? origin(b) : p.align.front();
    }
    return p;
  }
};

namespace {

bool is_word_byte(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || u >= 0x80;
}

bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// NFC per chunk: a chunk starts at each ASCII byte (an ASCII character is a starter that never
// composes with what precedes it), so composing each chunk equals composing the whole text.
void normalize_nfc(std::string& text, std::vector<uint32_t>& align) {
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return;
  std::string out;
  std::vector<uint32_t> out_align;
  out.reserve(text.size());
  out_align.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i + 1;
    while (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) ++j;
    const std::string_view chunk(text.data() + i, j - i);
    bool chunk_ascii = j == i + 1 && static_cast<unsigned char>(text[i]) < 0x80;
    utf8proc_uint8_t* composed = nullptr;
    utf8proc_ssize_t n = -1;
    if (!chunk_ascii)
      n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(chunk.data()), utf8proc_ssize_t(chunk.size()),
                       &composed, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n >= 0 && (size_t(n) != chunk.size() || std::string_view(reinterpret_cast<char*>(composed), size_t(n)) != chunk)) {
      out.append(reinterpret_cast<char*>(composed), size_t(n));
      out_align.insert(out_align.end(), size_t(n), align[i]);
    } else {
      out.append(chunk);
      out_align.insert(out_align.end(), align.begin() + long(i), align.begin() + long(j));
    }
    std::free(composed);
    i = j;
  }
  text.swap(out);
  align.swap(out_align);
}

void replace_all(std::string& text, std::vector<uint32_t>& align, const std::string& from, const std::string& to) {
  if (from.empty() || text.find(from) == std::string::npos) return;
  std::string out;
  std::vector<uint32_t> out_align;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, from.size(), from) == 0) {
      out += to;
      out_align.insert(out_align.end(), to.size(), align[i]);
      i += from.size();
    } else {
      out.push_back(text[i]);
      out_align.push_back(align[i]);
      ++i;
    }
  }
  text.swap(out);
  align.swap(out_align);
}

}  // namespace

void PipelineTokenizer::finalize() {
  added_by_first_byte_.clear();
  added_by_id_.clear();
  for (size_t i = 0; i < added.size(); ++i) {
    added_by_id_[added[i].id] = i;
    if (!added[i].content.empty()) added_by_first_byte_[added[i].content[0]].push_back(i);
  }
  for (auto& [b, list] : added_by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](size_t x, size_t y) { return added[x].content.size() > added[y].content.size(); });
}

Encoding PipelineTokenizer::encode(std::string_view text, bool add_special) const {
  Encoding e;
  if (add_special)
    for (int32_t id : prefix_ids) {
      e.ids.push_back(id);
      e.offsets.push_back(0);
    }
  // Added tokens first: leftmost, longest match; lstrip/rstrip absorb neighbouring spaces.
  size_t text_start = 0, i = 0;
  while (i < text.size()) {
    auto it = added_by_first_byte_.find(text[i]);
    const AddedToken* hit = nullptr;
    if (it != added_by_first_byte_.end()) {
      for (size_t k : it->second) {
        const AddedToken& a = added[k];
        if (text.compare(i, a.content.size(), a.content) != 0) continue;
        if (a.single_word) {
          const bool left_ok = i == 0 || !is_word_byte(text[i - 1]);
          const size_t end = i + a.content.size();
          const bool right_ok = end >= text.size() || !is_word_byte(text[end]);
          if (!left_ok || !right_ok) continue;
        }
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t before_end = i, after = i + hit->content.size();
    if (hit->lstrip)
      while (before_end > text_start && is_space_byte(text[before_end - 1])) --before_end;
    if (hit->rstrip)
      while (after < text.size() && is_space_byte(text[after])) ++after;
    encode_text(text.substr(text_start, before_end - text_start), uint32_t(text_start), e.ids, e.offsets);
    e.ids.push_back(hit->id);
    e.offsets.push_back(uint32_t(i));
    text_start = i = after;
  }
  encode_text(text.substr(text_start), uint32_t(text_start), e.ids, e.offsets);
  if (add_special)
    for (int32_t id : suffix_ids) {
      e.ids.push_back(id);
      e.offsets.push_back(uint32_t(text.size()));
    }
  return e;
}

// HF tokenizers' order: the normalizers rewrite the whole span, the pre-tokenizers cut it into
// pieces, the model turns each piece into ids; every byte keeps the input offset it came from.
void PipelineTokenizer::encode_text(std::string_view text, uint32_t base, std::vector<int32_t>& ids,
                                    std::vector<uint32_t>& offsets) const {
  if (text.empty()) return;
  Piece whole;
  whole.text = std::string(text);
  whole.base = base;
  for (const NormalizerStep& n : normalizers) normalize(n, whole);
  std::vector<Piece> pieces_now{std::move(whole)};
  for (const PreTokenizerStep& step : pre_tokenizers) {
    std::vector<Piece> next;
    for (Piece& p : pieces_now) pre_tokenize(step, p, next);
    pieces_now.swap(next);
  }
  for (const Piece& p : pieces_now) encode_piece(p, ids, offsets);
}

// One normalizer step over the whole span (its alignment follows every inserted byte).
void PipelineTokenizer::normalize(const NormalizerStep& n, Piece& whole) {
  std::vector<uint32_t> a = whole.full_align();
  switch (n.kind) {
    case NormalizerStep::Kind::Prepend:
      if (whole.text.empty()) return;
      a.insert(a.begin(), n.a.size(), a.empty() ? whole.base : a.front());
      whole.text = n.a + whole.text;
      break;
    case NormalizerStep::Kind::Nfc: normalize_nfc(whole.text, a); break;
    case NormalizerStep::Kind::Replace: replace_all(whole.text, a, n.a, n.b); break;
  }
  whole.align = std::move(a);
}

// One pre-tokenizer step over one piece; the pieces it yields go to `next`.
void PipelineTokenizer::pre_tokenize(const PreTokenizerStep& step, Piece& p, std::vector<Piece>& next) {
  if (step.kind == PreTokenizerStep::Kind::Metaspace) return metaspace(step, p, next);
  if (step.kind == PreTokenizerStep::Kind::ByteLevel && step.add_prefix_space && !p.text.empty() && p.text[0] != ' ') {
    p.align = p.full_align();
    p.align.insert(p.align.begin(), p.origin(0));
    p.text = " " + p.text;
  }
  if (!step.regex) {
    next.push_back(std::move(p));
    return;
  }
  split_by_regex(step, p, next);
}

// Metaspace: spaces become the replacement character, prepended per the scheme, and the piece is
// split before each replacement character (which stays with the word after it).
void PipelineTokenizer::metaspace(const PreTokenizerStep& step, Piece& p, std::vector<Piece>& next) {
  std::vector<uint32_t> a = p.full_align();
  replace_all(p.text, a, " ", step.replacement);
  p.align = std::move(a);
  const bool first = p.base == 0 && (p.align.empty() || p.align.front() == 0);
  const bool want = step.prepend == PreTokenizerStep::Prepend::Always ||
                    (step.prepend == PreTokenizerStep::Prepend::First && first);
  if (want && p.text.compare(0, step.replacement.size(), step.replacement) != 0) {
    p.align.insert(p.align.begin(), step.replacement.size(), p.origin(0));
    p.text = step.replacement + p.text;
  }
  if (!step.split) {
    next.push_back(std::move(p));
    return;
  }
  size_t start = 0, pos = p.text.find(step.replacement, 1);
  while (pos != std::string::npos) {
    next.push_back(p.sub(start, pos));
    start = pos;
    pos = p.text.find(step.replacement, pos + step.replacement.size());
  }
  next.push_back(p.sub(start, p.text.size()));
}

// Split: the regex's matches are delimiters (or, inverted, the content); the behaviour places them.
void PipelineTokenizer::split_by_regex(const PreTokenizerStep& step, const Piece& p, std::vector<Piece>& next) {
  struct Span { size_t b, e; bool delim; };
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [b, e] : step.regex->find_all(p.text)) {
    if (b > prev) spans.push_back({prev, b, step.invert});
    spans.push_back({b, e, !step.invert});
    prev = e;
  }
  if (prev < p.text.size()) spans.push_back({prev, p.text.size(), step.invert});
  using B = PreTokenizerStep::Behavior;
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t k = 0; k < spans.size(); ++k) {
    const Span& s = spans[k];
    const bool joins_previous = !out.empty() && out.back().second == s.b &&
                                ((step.behavior == B::MergedWithPrevious && s.delim) ||
                                 (step.behavior == B::MergedWithNext && k > 0 && spans[k - 1].delim));
    if (step.behavior == B::Removed && s.delim) continue;
    if (joins_previous)
      out.back().second = s.e;
    else
      out.emplace_back(s.b, s.e);
  }
  for (auto [b, e] : out)
    if (e > b) next.push_back(p.sub(b, e));
}

// The model (BPE over byte-level characters, BPE or SentencePiece over UTF-8) on one piece; each
// id's offset is the input byte its first character came from.
void PipelineTokenizer::encode_piece(const Piece& p, std::vector<int32_t>& ids, std::vector<uint32_t>& offsets) const {
  if (p.text.empty()) return;
  std::vector<int32_t> piece_ids_out;
  std::vector<uint32_t> chars;  // characters per id
  if (byte_level) {
    bpe->encode_word(byte_level_encode(p.text), piece_ids_out, chars);
    size_t byte_pos = 0;  // one byte-level character per input byte
    for (size_t t = 0; t < piece_ids_out.size(); ++t) {
      ids.push_back(piece_ids_out[t]);
      offsets.push_back(p.origin(byte_pos));
      byte_pos += chars[t];
    }
    return;
  }
  if (bpe)
    bpe->encode_word(p.text, piece_ids_out, chars);
  else
    spm->encode(p.text, piece_ids_out, chars);
  std::vector<std::string_view> cs = utf8_chars(p.text);
  size_t char_pos = 0, byte_pos = 0;
  for (size_t t = 0; t < piece_ids_out.size(); ++t) {
    ids.push_back(piece_ids_out[t]);
    offsets.push_back(p.origin(byte_pos));
    for (uint32_t c = 0; c < chars[t] && char_pos < cs.size(); ++c) byte_pos += cs[char_pos++].size();
  }
}

std::string PipelineTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= int32_t(pieces.size())) fail("[decode] token id ", id, " is outside the vocabulary (", pieces.size(), ")");
    if (skip_special && is_special(id)) continue;
    tokens.push_back(pieces[size_t(id)]);
  }
  for (const DecoderStep& d : decoders) decode_step(d, tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

namespace {

std::string joined(const std::vector<std::string>& tokens) {
  std::string all;
  for (const auto& t : tokens) all += t;
  return all;
}

// "<0x0A>" -> "\n"; any other token unchanged.
void byte_fallback(std::string& t) {
  unsigned b = 0;
  if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::sscanf(t.c_str(), "<0x%02X>", &b) == 1)
    t = std::string(1, char(b));
}

void strip(std::string& t, const DecoderStep& d) {
  for (int n = 0; n < d.start && t.compare(0, d.a.size(), d.a) == 0; ++n) t.erase(0, d.a.size());
  for (int n = 0; n < d.stop && t.size() >= d.a.size() && t.compare(t.size() - d.a.size(), d.a.size(), d.a) == 0; ++n)
    t.erase(t.size() - d.a.size());
}

}  // namespace

// One decoder step over the token strings (HF tokenizers' decoders, in order).
void PipelineTokenizer::decode_step(const DecoderStep& d, std::vector<std::string>& tokens) {
  std::vector<uint32_t> unused;
  switch (d.kind) {
    case DecoderStep::Kind::ByteLevel: tokens = {byte_level_decode(joined(tokens))}; break;
    case DecoderStep::Kind::Fuse: tokens = {joined(tokens)}; break;
    case DecoderStep::Kind::ByteFallback:
      for (auto& t : tokens) byte_fallback(t);
      break;
    case DecoderStep::Kind::Strip:
      for (auto& t : tokens) strip(t, d);
      break;
    case DecoderStep::Kind::Replace:
      for (auto& t : tokens) {
        unused.assign(t.size(), 0);
        replace_all(t, unused, d.a, d.b);
      }
      break;
    case DecoderStep::Kind::Metaspace:
      for (size_t k = 0; k < tokens.size(); ++k) {
        unused.assign(tokens[k].size(), 0);
        replace_all(tokens[k], unused, d.a, " ");
        if (k == 0 && d.prepend && !tokens[k].empty() && tokens[k][0] == ' ') tokens[k].erase(0, 1);
      }
      break;
  }
}

std::string PipelineTokenizer::id_to_piece(int32_t id) const {
  TAIA_CHECK(id >= 0 && id < int32_t(pieces.size()), "[id_to_piece] token id ", id, " is outside the vocabulary (",
             pieces.size(), ")");
  return pieces[size_t(id)];
}

std::optional<int32_t> PipelineTokenizer::piece_to_id(std::string_view piece) const {
  auto it = piece_ids.find(std::string(piece));
  if (it == piece_ids.end()) return std::nullopt;
  return it->second;
}

bool PipelineTokenizer::is_special(int32_t id) const {
  if (hidden_when_skipping_special.count(id)) return true;
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added[it->second].special;
}

std::string IncrementalDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string text = tokenizer_.decode(ids_, skip_special_);
  const size_t complete = utf8_complete_prefix(text);
  if (complete <= emitted_) return "";
  std::string out = text.substr(emitted_, complete - emitted_);
  emitted_ = complete;
  return out;
}

std::string IncrementalDecoder::flush() {
  const std::string text = tokenizer_.decode(ids_, skip_special_);
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  emitted_ = text.size();
  return out;
}

}  // namespace taia
