// Where a forward pass's time goes, step by step (`taia bench decode --profile`): seconds and the
// bytes each step reads (weights at their stored size, the KV rows attention reads), so that each
// step's rate can be set beside the machine's read bandwidth.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>

namespace taia {

enum class DecodeStep { Embed, Norms, Qkv, Rotary, CacheWrite, Attention, AttnOut, GateUp, Activation, Down, LmHead, Count };
inline constexpr int kDecodeSteps = int(DecodeStep::Count);

inline const char* decode_step_name(DecodeStep s) {
  constexpr const char* kNames[kDecodeSteps] = {"embed",     "norms",          "q/k/v projections", "rope, qk-norm",
                                                "kv write",  "attention",      "o projection",      "gate/up projections",
                                                "activation", "down projection", "lm head"};
  return kNames[int(s)];
}

struct DecodeProfile {
  std::array<double, kDecodeSteps> seconds{};
  std::array<double, kDecodeSteps> bytes{};
  void add(DecodeStep s, double sec, double b) {
    seconds[size_t(s)] += sec;
    bytes[size_t(s)] += b;
  }
  void clear() { *this = DecodeProfile{}; }
};

// Adds the time from its construction to its end to `step` of a profile (nothing when null).
class StepTimer {
 public:
  StepTimer(DecodeProfile* profile, DecodeStep step, double bytes = 0.0)
      : profile_(profile), step_(step), bytes_(bytes) {
    if (profile_) start_ = std::chrono::steady_clock::now();
  }
  ~StepTimer() {
    if (profile_)
      profile_->add(step_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), bytes_);
  }
  StepTimer(const StepTimer&) = delete;
  StepTimer& operator=(const StepTimer&) = delete;

 private:
  DecodeProfile* profile_;
  DecodeStep step_;
  double bytes_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace taia
