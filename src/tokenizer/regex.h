// PCRE2 regular expressions with UTF and Unicode properties (UCP), JIT-compiled: the
// pre-tokenizer patterns of HF tokenizers (\p{L}, \p{N}, lookahead, case-insensitive groups).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace taia {

class Regex {
 public:
  // Throws taia::Error naming `origin` and the pattern position on a compile error.
  Regex(const std::string& pattern, const std::string& origin);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace taia
