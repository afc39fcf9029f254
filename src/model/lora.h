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
#include "model/molora.h"
#include "model/tensor_names.h"
#include "model/weights.h"

namespace taia {

// A LoRA branch's scale: alpha / r, or with rsLoRA alpha / sqrt(r).
double lora_scale(int64_t rank, double alpha, bool use_rslora);

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

  // Rank and alpha for the module in slot p after the pattern overrides; nullopt if not adapted.
  std::optional<std::pair<int64_t, double>> module_rank_alpha(int64_t layer, Proj p,
                                                               ProjLayout layout = ProjLayout::Split) const;
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

// What one projection sees of a module: all of it, or in a fused module (Phi-3's qkv_proj,
// gate_up_proj) its rows of B with the shared A: y_p += scale * B_p A x. dA is the whole
// module's, so the projections of a group add their parts of A's gradient into it.
struct LoraView {
  int64_t rank = 0, in = 0, out = 0;  // out: the projection's rows
  float scale = 0;
  const float* A = nullptr;  // [rank, in]
  float* dA = nullptr;       // [rank, in]
  const float* B = nullptr;  // [out, rank], rows of the module's B
  float* dB = nullptr;       // [out, rank]
};

struct LoraAdapter {
  LoraConfig config;
  // Split: a module per projection; Fused: one per fused group, in the group's first slot.
  ProjLayout layout = ProjLayout::Split;
  std::vector<std::array<std::optional<LoraModule>, kNumProj>> layers;
  // MoLoRA: mixtures of experts on the projections LoRA leaves alone (the FFN by default; empty
  // for a plain LoRA adapter). A mode's mask selects them like LoRA modules: taia = attention
  // LoRA only, taif = the experts only, vanilla = both.
  MoloraExperts molora;

  // Modules per config for a model; A drawn from `seed` (PEFT's kaiming-uniform), B zero.
  static LoraAdapter create(const ModelConfig& model, const LoraConfig& config, uint64_t seed);
  // MoLoRA: experts (with the LoRA's rank and scale) on molora.targets, plain LoRA on the rest of
  // config.targets; both drawn from `seed` (the experts from a stream of their own).
  static LoraAdapter create_with_experts(const ModelConfig& model, const LoraConfig& config,
                                         const MoloraConfig& molora, uint64_t seed);
  // The module in slot p (in the Fused layout K, V and Up hold none).
  LoraModule* find(int64_t layer, Proj p);
  const LoraModule* find(int64_t layer, Proj p) const;
  // Projection p's view of the module that covers it; nullopt if none does. row0: p's first row
  // in a fused module (proj_row_offset).
  std::optional<LoraView> view(int64_t layer, Proj p, int64_t row0, int64_t rows);
  std::optional<LoraView> view(int64_t layer, Proj p, int64_t row0, int64_t rows) const;  // dA, dB null
  // The module name of slot p in this adapter's layout ("model.layers.3.self_attn.qkv_proj").
  std::string module_name(int64_t layer, Proj p) const { return taia::module_name(layer, p, layout); }
  void zero_grad();           // LoRA and experts
  int64_t parameter_count() const;  // LoRA and experts
  // Whether any expert mixture sits on a projection of `mask`.
  bool has_experts(const ModuleMask& mask) const;
};

// Fused layouts adapt a group (q, k, v; gate, up) as one module: a mask that splits a group is
// refused, naming `what`.
void check_fused_targets(const ModuleMask& mask, ProjLayout layout, const char* what);

}  // namespace taia
