#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace taia {

std::string format_duration(double s) {
  const int64_t t = int64_t(std::max(0.0, s) + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), tty_(enabled && ::isatty(2)),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

void ProgressBar::update(int64_t done, const std::string& extra, int64_t first_done) {
  if (!tty_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int64_t progressed = done - first_done;
  const double eta = progressed > 0 ? elapsed / double(progressed) * double(total_ - done) : 0.0;
  const int width = 24;
  const int filled = int(double(width) * double(std::min(done, total_)) / double(total_));
  std::string bar(size_t(filled), '#');
  bar.resize(size_t(width), '.');
  std::fprintf(stderr, "\r %s %lld/%lld [%s] %s ETA %s   ", label_.c_str(), (long long)done, (long long)total_,
               bar.c_str(), extra.c_str(), format_duration(eta).c_str());
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace taia
