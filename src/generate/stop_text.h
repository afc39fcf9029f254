// A reply's text as its pieces arrive, cut at the first stop string (the OpenAI API's `stop`):
// hands out only the text no stop string can still claim, so a streamed reply never shows the
// start of a stop string it later drops. Used by taia serve and the public API (generate's stop).
#pragma once
#include <string>
#include <vector>

namespace taia {

class StopText {
 public:
  explicit StopText(const std::vector<std::string>& stop);  // empty strings are no stop

  // Appends a decoded piece; true when the text now holds a stop string (the text is cut before
  // it, and nothing more should be appended).
  bool append(const std::string& piece);
  // The text not handed out yet that no stop string can begin (held back: a possible start).
  std::string take_certain();
  // Everything not handed out yet (at the end of the reply).
  std::string take_rest();
  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  size_t longest_ = 0;  // bytes of the longest stop string
  std::string text_;
  size_t emitted_ = 0;  // bytes of text_ handed out
  bool stopped_ = false;
};

}  // namespace taia
