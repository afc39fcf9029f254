// What one decoder layer runs, sub-step by sub-step, resolved from the architecture and the
// configuration in one place (layer_recipe.cpp). The decoder (prefill, decode, packed rows) and
// the training engine (forward with saved activations, backward) both follow it, each sub-step
// one call into src/kernels/ whose forward and backward sit side by side:
//
//   x -> norm(input) -> q, k, v -> [qk_norm] -> [rotary] -> attention(window, scale, soft-cap)
//     -> o -> [output norm] -> + x -> norm(ffn) -> gate, up -> glu(activation) -> down
//     -> [output norm] -> + x
//
// Neither reads architecture flags: a family differs only in the recipe it yields.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/glu.h"
#include "model/config.h"

namespace taia {

// Every RMSNorm of the model: y = (offset + w) * x / rms(x).
struct NormStep {
  float eps = 1e-6f;
  float weight_offset = 0.0f;  // 1: Gemma's (1 + weight)
};

// Which rotation a layer's queries and keys take: none (SmolLM3's NoPE layers), the model's
// rope_theta with its scaling (Global), or Gemma 3's local base without scaling (Local).
enum class RotaryTable { None, Global, Local };
struct RotaryStep {
  RotaryTable table = RotaryTable::Global;
  int64_t dims = 0;  // channels rotated per head (head_dim, or fewer for a partial rotary)
};

struct LayerRecipe {
  NormStep norm;
  bool qk_norm = false;  // an RMSNorm over head_dim on every query and key head before the rotary
  RotaryStep rotary;
  AttentionShape attention{};  // heads, the layer's window, scale, soft-cap
  bool output_norms = false;   // o / down outputs normalised before they join the residual (sandwich)
  Activation activation = Activation::Silu;
};

// The steps around the layers: the embedding scale, the final norm and the final soft-cap.
struct ModelRecipe {
  float embedding_scale = 1.0f;  // Gemma: sqrt(hidden) rounded to F32; else 1
  NormStep norm;                 // the final norm (and every layer's)
  float final_softcap = 0.0f;    // logits -> cap * tanh(logit / cap); 0: none
  int64_t rotary_dims = 0;       // rotated channels per head where a layer rotates
  std::vector<LayerRecipe> layers;
  // Which rotation tables the layers use (the decoder and the engine build only those).
  bool uses(RotaryTable t) const;
  // Whether some layer has a step (the engine plans its buffers by these).
  bool any_qk_norm() const;
  bool any_output_norms() const;
  bool any_attention_softcap() const;
};

ModelRecipe model_recipe(const ModelConfig& c);

}  // namespace taia
