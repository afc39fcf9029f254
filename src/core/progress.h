// A one-line progress bar with ETA on stderr, drawn only when stderr is a terminal (and the
// caller wants it), so logs and pipes stay clean.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace taia {

std::string format_duration(double seconds);  // "3m07s", "1h12m"

class ProgressBar {
 public:
  // label: e.g. "step" or "eval gsm8k/taia"; enabled && isatty(2) decides whether it draws.
  ProgressBar(std::string label, int64_t total, bool enabled);
  ~ProgressBar() { finish(); }
  void finish();  // ends the line if anything was drawn (before other output)

  // done of total finished; `extra` is shown after the bar (loss, tokens/s, ...). The ETA comes
  // from the time since construction (or since `first_done` for resumed runs).
  void update(int64_t done, const std::string& extra = "", int64_t first_done = 0);
  bool drawing() const { return tty_; }

 private:
  std::string label_;
  int64_t total_;
  bool tty_, drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace taia
