// AdamW exactly as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected
// moments), global-norm gradient clipping as torch.nn.utils.clip_grad_norm_, and the learning
// rate schedules of HF transformers (constant / linear / cosine with linear warmup).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace taia {

struct ParamRef {
  std::string name;
  float* value = nullptr;
  float* grad = nullptr;
  size_t size = 0;
  bool decay = true;  // false for norms and biases
  int64_t layer = -1;  // its decoder layer; -1: embeddings, final norm, LM head (for data parallelism)
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<ParamRef> params, const AdamWConfig& config);
  void step(double lr);
  int64_t steps_taken() const { return t_; }
  const std::vector<ParamRef>& params() const { return params_; }
  // Moments, for checkpoints: m then v of every parameter, in order.
  std::vector<float>& m(size_t i) { return m_[i]; }
  std::vector<float>& v(size_t i) { return v_[i]; }
  void set_steps_taken(int64_t t) { t_ = t; }

 private:
  std::vector<ParamRef> params_;
  AdamWConfig config_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

// Global L2 norm of all gradients; if max_norm > 0 and the norm exceeds it, scales them down.
double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm);
// Its two halves, for a norm summed over ranks: the sum of squared gradients (in double), and
// the scaling of the gradients by max_norm / (norm + 1e-6) when that is below 1 (torch's rule).
double grad_square_sum(const std::vector<ParamRef>& params);
void clip_to_norm(const std::vector<ParamRef>& params, double norm, double max_norm);

enum class Schedule { Constant, Linear, Cosine };
Schedule parse_schedule(const std::string& name);
// HF get_*_schedule_with_warmup: lr at optimizer step `step` (0-based) of `total`.
double scheduled_lr(Schedule s, double base_lr, int64_t step, int64_t total, int64_t warmup_steps);

}  // namespace taia
