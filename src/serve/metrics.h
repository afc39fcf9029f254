// `taia serve`'s /metrics in Prometheus' text format (version 0.0.4): requests by status and mode,
// prompt and generated tokens, time to first token and time per output token as histograms; the
// queue's depth and the running rows are read from the engine when rendered.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace taia::serve {

class Metrics {
 public:
  Metrics();
  // One finished HTTP request (every endpoint); mode: the completion's mode, "" for the others.
  void request_done(int status, const std::string& mode);
  void tokens(int64_t prompt, int64_t generated);
  void time_to_first_token(double seconds);
  void time_per_output_token(double seconds);
  std::string render(int64_t waiting, int64_t running) const;

 private:
  struct Histogram {
    std::vector<double> bounds;    // upper bounds (le), increasing; +Inf implied
    std::vector<uint64_t> counts;  // [bounds + 1], per bucket (not cumulative)
    double sum = 0;
    uint64_t count = 0;
    void add(double v);
    void render(std::string& out, const std::string& name, const std::string& help) const;
  };
  mutable std::mutex mu_;
  std::map<std::pair<int, std::string>, uint64_t> requests_;  // (status, mode) -> count
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, tpot_;
};

}  // namespace taia::serve
