#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"

namespace taia {

AdamW::AdamW(std::vector<ParamRef> params, const AdamWConfig& config) : params_(std::move(params)), config_(config) {
  for (const ParamRef& p : params_) {
    m_.emplace_back(p.size, 0.0f);
    v_.emplace_back(p.size, 0.0f);
  }
}

void AdamW::step(double lr) {
  ++t_;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double bc1 = 1.0 - std::pow(b1, double(t_)), bc2 = 1.0 - std::pow(b2, double(t_));
  const float step_size = float(lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    float* m = m_[i].data();
    float* v = v_[i].data();
    const float decay = p.decay ? float(1.0 - lr * config_.weight_decay) : 1.0f;
    const float fb1 = float(b1), fb2 = float(b2), eps = float(config_.eps);
#pragma omp parallel for schedule(static) if (p.size > 65536)
    for (size_t k = 0; k < p.size; ++k) {
      const float g = p.grad[k];
      m[k] = fb1 * m[k] + (1.0f - fb1) * g;
      v[k] = fb2 * v[k] + (1.0f - fb2) * g * g;
      const float denom = std::sqrt(v[k]) / bc2_sqrt + eps;
      p.value[k] = p.value[k] * decay - step_size * m[k] / denom;
    }
  }
}

double grad_square_sum(const std::vector<ParamRef>& params) {
  double sq = 0;
  for (const ParamRef& p : params) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static) if (p.size > 65536)
    for (size_t k = 0; k < p.size; ++k) s += double(p.grad[k]) * double(p.grad[k]);
    sq += s;
  }
  return sq;
}

void clip_to_norm(const std::vector<ParamRef>& params, double norm, double max_norm) {
  if (!(max_norm > 0) || !std::isfinite(norm)) return;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (const ParamRef& p : params)
      for (size_t k = 0; k < p.size; ++k) p.grad[k] = float(double(p.grad[k]) * coef);
}

double clip_grad_norm(const std::vector<ParamRef>& params, double max_norm) {
  const double norm = std::sqrt(grad_square_sum(params));
  clip_to_norm(params, norm, max_norm);
  return norm;
}

Schedule parse_schedule(const std::string& name) {
  if (name == "constant") return Schedule::Constant;
  if (name == "linear") return Schedule::Linear;
  if (name == "cosine") return Schedule::Cosine;
  fail("[schedule] expected constant, linear or cosine, got '", name, "'");
}

double scheduled_lr(Schedule s, double base_lr, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return base_lr * double(step) / double(std::max<int64_t>(1, warmup));
  if (s == Schedule::Constant) return base_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  if (s == Schedule::Linear) return base_lr * std::max(0.0, 1.0 - progress);
  return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace taia
