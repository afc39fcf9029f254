// An enum's words as one table of (word, value) pairs, and the two lookups every such table needs:
// the word of a value (for messages and JSON) and the value of a word (for options and files).
// One table per concept (train/method, eval/settings), read by the CLI through the same table.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace taia {

template <typename E>
using EnumWords = std::vector<std::pair<std::string, E>>;

// The word of `value`, or nullptr when the table has none.
template <typename E>
const std::string* word_of(const EnumWords<E>& words, E value) {
  for (const auto& [word, v] : words)
    if (v == value) return &word;
  return nullptr;
}

// The value of `word`, or nullptr when the table has none.
template <typename E>
const E* value_of(const EnumWords<E>& words, const std::string& word) {
  for (const auto& [w, value] : words)
    if (w == word) return &value;
  return nullptr;
}

}  // namespace taia
