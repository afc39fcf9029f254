// MoLoRA adapters (the TAIA paper's mixture of LoRA experts): on each targeted projection
// (by default the FFN's gate, up and down) E LoRA experts of the adapter's rank and alpha and a
// router in_features -> E with bias; attention keeps plain LoRA. The maths is in kernels/molora.h.
// On disk (beside the attention LoRA's ordinary PEFT files, so that PEFT, `taia export` and
// llama.cpp use the TAIA part as it is): molora_config.json and molora_model.safetensors, keys
//   base_model.model.model.layers.N.mlp.gate_proj.experts.E.lora_A.weight  [r, in]
//   base_model.model.model.layers.N.mlp.gate_proj.experts.E.lora_B.weight  [out, r]
//   base_model.model.model.layers.N.mlp.gate_proj.router.weight            [E, in]
//   base_model.model.model.layers.N.mlp.gate_proj.router.bias              [E]
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/molora.h"
#include "model/config.h"
#include "model/modes.h"

namespace taia {

inline constexpr const char* kMoloraConfigFile = "molora_config.json";
inline constexpr const char* kMoloraWeightsFile = "molora_model.safetensors";

struct MoloraConfig {
  int64_t experts = 0;  // 0: no MoLoRA (a plain LoRA adapter)
  int64_t top_k = 1;    // the official setting; with 1 the router never learns (see kernels/molora.h)
  // Training only (our extension): weight of the Switch-Transformer balance loss per router.
  double balance_coef = 0;
  ModuleMask targets{false, false, false, false, true, true, true};  // gate, up, down
};

struct MoloraModule {
  int64_t experts = 0, top_k = 0, rank = 0, in = 0, out = 0;
  float scale = 0;
  std::vector<float> A;         // [E, r, in]  kaiming-uniform as LoRA's A
  std::vector<float> B;         // [E, out, r] zero
  std::vector<float> router_w;  // [E, in]     nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in))
  std::vector<float> router_b;  // [E]         the same bound
  std::vector<float> dA, dB, d_router_w, d_router_b;  // gradients, same shapes (empty when loaded)

  MoloraWeights<float> weights() const {
    return {experts, top_k, rank, in, out, scale, A.data(), B.data(), router_w.data(), router_b.data()};
  }
  MoloraGrads<float> grads() { return {dA.data(), dB.data(), d_router_w.data(), d_router_b.data()}; }
};

// The experts of a projection, a [layers][kNumProj] table (empty slots where none).
struct MoloraExperts {
  MoloraConfig config;
  std::vector<std::array<std::optional<MoloraModule>, kNumProj>> layers;

  // Modules for `model` with rank r and scale, A and the routers drawn from `seed`.
  static MoloraExperts create(const ModelConfig& model, const MoloraConfig& config, int64_t rank, float scale,
                              uint64_t seed);
  MoloraModule* find(int64_t layer, Proj p);
  const MoloraModule* find(int64_t layer, Proj p) const;
  bool empty() const { return config.experts == 0; }
  void zero_grad();
  int64_t parameter_count() const;
};

// "model.layers.3.mlp.gate_proj.experts.2.lora_A.weight" and the like, with PEFT's prefix.
std::string molora_key(int64_t layer, Proj p, const std::string& tail);

// Writes molora_config.json and molora_model.safetensors into dir (each atomically); r and
// alpha are recorded for the reader.
void save_molora(const MoloraExperts& experts, const std::string& dir, int64_t rank, double alpha, bool use_rslora);
// Reads them for `model`, every key and shape checked; false when dir has no molora_config.json.
bool load_molora(const std::string& dir, const ModelConfig& model, MoloraExperts& experts);
// Removes a previous save's MoLoRA files from dir (a LoRA adapter saved over a MoLoRA one).
void remove_molora_files(const std::string& dir);

}  // namespace taia
