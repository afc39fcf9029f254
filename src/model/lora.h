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

namespace taia {

enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kNumProj = 7;
const char* proj_name(Proj p);            // "q_proj", ..., "down_proj"
const char* proj_parent(Proj p);          // "self_attn" or "mlp"
bool proj_is_attention(Proj p);
std::optional<Proj> proj_from_name(const std::string& name);  // "q", "q_proj", "gate", ...
// "all", "attn", "ffn" or a comma list of q,k,v,o,gate,up,down (with or without _proj).
std::array<bool, kNumProj> parse_targets(const std::string& spec);
std::string targets_to_string(const std::array<bool, kNumProj>& t);
// The HF module name: "model.layers.3.self_attn.q_proj".
std::string module_name(int64_t layer, Proj p);

// Which adapter modules a model runs with (the TAIA modes): base = none, vanilla = all,
// taia = attention (q,k,v,o), taif = FFN (gate,up,down), or an explicit list ("q,k,v").
using ModuleMask = std::array<bool, kNumProj>;
ModuleMask parse_mode(const std::string& mode_or_modules);
std::string mode_name(const ModuleMask& mask);  // "taia", "vanilla", ... or the module list

struct LoraConfig {
  int64_t rank = 16;
  double alpha = 32;
  double dropout = 0.05;
  bool use_rslora = false;
  std::array<bool, kNumProj> targets{true, true, true, true, true, true, true};
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

// In and out features of a projection.
std::pair<int64_t, int64_t> proj_shape(const ModelConfig& c, Proj p);

}  // namespace taia
