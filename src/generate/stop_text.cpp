#include "generate/stop_text.h"

#include <algorithm>

namespace taia {
namespace {

// Bytes at the end of `text` that could begin one of the stop strings (held back until known).
size_t stop_prefix_at_end(const std::string& text, const std::vector<std::string>& stop) {
  size_t hold = 0;
  for (const auto& s : stop)
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}

}  // namespace

StopText::StopText(const std::vector<std::string>& stop) {
  for (const auto& s : stop)
    if (!s.empty()) {
      stop_.push_back(s);
      longest_ = std::max(longest_, s.size());
    }
}

bool StopText::append(const std::string& piece) {
  // A stop string can only end inside the new piece: search from where it could begin.
  const size_t from = text_.size() > longest_ ? text_.size() - longest_ : 0;
  text_ += piece;
  size_t cut = std::string::npos;
  for (const auto& s : stop_)
    cut = std::min(cut, text_.find(s, from));
  if (cut == std::string::npos) return false;
  text_.resize(cut);
  stopped_ = true;
  return true;
}

std::string StopText::take_certain() {
  const size_t certain = text_.size() - (stopped_ ? 0 : stop_prefix_at_end(text_, stop_));
  if (certain <= emitted_) return std::string();
  std::string out = text_.substr(emitted_, certain - emitted_);
  emitted_ = certain;
  return out;
}

std::string StopText::take_rest() {
  std::string out = text_.substr(std::min(emitted_, text_.size()));
  emitted_ = text_.size();
  return out;
}

}  // namespace taia
