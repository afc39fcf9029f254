// LoRA adapters on the seven projections (PEFT semantics):
// y = W x + b + scale * B A dropout(x), scale = alpha / r (rsLoRA: alpha / sqrt(r)),
// A [r, in] kaiming-uniform (bound 1/sqrt(in)), B [out, r] zero.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/modes.h"
#include "model/tensor_names.h"
#include "model/weights.h"

namespace taia {

struct LoraConfig {
  int64_t rank = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool use_rslora = false;
  ModuleMask targets{true, true, true, true, true, true, true};
  std::map<std::string, int64_t> rank_pattern;   // PEFT: key matches a module name's tail (regex)
  std::map<std::string, double> alpha_pattern;
  std::vector<int64_t> layers_to_transform;      // empty: every layer
  std::string target_regex;  // PEFT target_modules given as a string: modules whose name full-matches

  // Rank and alpha for one module after the pattern overrides; nullopt if not adapted.
  std::optional<std::pair<int64_t, double>> module_rank_alpha(int64_t layer, Proj p) const;
  double scale(int64_t rank, double alpha) const;
};

struct LoraModule {
  int64_t rank = 0, in = 0, out = 0;
  float scale = 0;
  std::vector<float> A;   // [rank, in]
  std::vector<float> B;   // [out, rank]
  std::vector<float> dA;  // gradients, same shapes
  std::vector<float> dB;
};

struct LoraAdapter {
  LoraConfig config;
  std::vector<std::array<std::optional<LoraModule>, kNumProj>> layers;

  // Modules per config for a model; A drawn from `seed` (PEFT's kaiming-uniform), B zero.
  static LoraAdapter create(const ModelConfig& model, const LoraConfig& config, uint64_t seed);
  LoraModule* find(int64_t layer, Proj p);
  const LoraModule* find(int64_t layer, Proj p) const;
  void zero_grad();
  int64_t parameter_count() const;
};

}  // namespace taia
