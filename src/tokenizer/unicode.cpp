#include "tokenizer/unicode.h"

#include <unordered_map>

namespace taia {

size_t utf8_sequence_length(uint8_t b) {
  if (b < 0x80) return 1;
  if ((b & 0xe0) == 0xc0) return 2;
  if ((b & 0xf0) == 0xe0) return 3;
  if ((b & 0xf8) == 0xf0) return 4;
  return 1;
}

namespace {
bool is_continuation(uint8_t b) { return (b & 0xc0) == 0x80; }

// Length of a valid sequence at s[i], or 0 if the bytes there are not valid UTF-8.
size_t valid_length_at(std::string_view s, size_t i) {
  const size_t n = utf8_sequence_length(uint8_t(s[i]));
  if (n == 1) return uint8_t(s[i]) < 0x80 ? 1 : 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if (!is_continuation(uint8_t(s[i + k]))) return 0;
  return n;
}
}  // namespace

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t n = valid_length_at(s, i);
    if (n == 0) n = 1;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string utf8_encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xc0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xe0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(char(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(char(0xf0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(char(0x80 | (cp & 0x3f)));
  }
  return out;
}

uint32_t utf8_decode_at(std::string_view s, size_t& i) {
  const size_t n = valid_length_at(s, i);
  if (n <= 1) return uint8_t(s[i++]);
  uint32_t cp = uint8_t(s[i]) & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3f);
  i += n;
  return cp;
}

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const uint8_t b = uint8_t(s[s.size() - back]);
    if (is_continuation(b)) continue;
    const size_t n = utf8_sequence_length(b);
    return n > back ? s.size() - back : s.size();
  }
  return s.size();
}

const std::array<std::string, 256>& byte_level_alphabet() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      t[b] = utf8_encode(printable ? b : next++);
    }
    return t;
  }();
  return table;
}

std::string byte_level_encode(std::string_view bytes) {
  const auto& table = byte_level_alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += table[uint8_t(c)];
  return out;
}

std::string byte_level_decode(std::string_view text) {
  static const std::unordered_map<uint32_t, uint8_t> inverse = [] {
    std::unordered_map<uint32_t, uint8_t> m;
    const auto& table = byte_level_alphabet();
    for (uint32_t b = 0; b < 256; ++b) {
      size_t i = 0;
      m[utf8_decode_at(table[b], i)] = uint8_t(b);
    }
    return m;
  }();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    const uint32_t cp = utf8_decode_at(text, i);
    auto it = inverse.find(cp);
    if (it != inverse.end())
      out.push_back(char(it->second));
    else
      out.append(text.substr(start, i - start));
  }
  return out;
}

}  // namespace taia
