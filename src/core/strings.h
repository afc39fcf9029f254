#pragma once
// Small ASCII string helpers shared by the parsers and scorers (one home, so that a unity build
// and a reader find one definition).

#include <cctype>
#include <string>

namespace taia {

// `s` with ASCII letters lowered; other bytes (UTF-8 included) unchanged.
inline std::string ascii_lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace taia
