// Where a fine-tuning update goes (`taia analyze`): on the same text, per layer, how far the
// attention block's output and the FFN's output move between the base and the fine-tuned model
// (an adapter in a mode, or a fine-tuned model), and the size of the update per module.
#pragma once
#include <cstdint>
#include <vector>

#include "core/json_util.h"
#include "model/lora.h"
#include "model/weights.h"

namespace taia {

// The change of one sub-layer's output over every token of the text: relative_change =
// ||out_ft - out_base|| / ||out_base|| (sums over tokens and features), mean_cosine = the mean over
// tokens of cos(out_ft[t], out_base[t]).
struct SublayerDrift {
  double diff_sq = 0, base_sq = 0, cosine_sum = 0;
  int64_t tokens = 0;
  double relative_change() const;
  double mean_cosine() const;
};

struct LayerDrift {
  SublayerDrift attention, ffn;  // the o_proj and down_proj outputs (after a sandwich norm, Gemma 2/3)
};

// Runs each sequence through `base` as it is and through the fine-tuned side: `adapter` applied
// in `mask` on the same base, or (adapter null) `finetuned`. One entry per layer.
std::vector<LayerDrift> measure_drift(const Model& base, const Model* finetuned, const LoraAdapter* adapter,
                                      const ModuleMask& mask, const std::vector<std::vector<int32_t>>& sequences);

// Per layer and FFN neuron (a row of down_proj's input, act(gate) * up), over every token of the
// text: the sums of (h_ft - h_base)^2 and h_base^2 (`taia analyze --neurons`).
struct NeuronDrift {
  std::vector<double> diff_sq, base_sq;  // [intermediate]
  int64_t tokens = 0;
};
// As measure_drift, for the FFN's hidden activations: one entry per layer.
std::vector<NeuronDrift> measure_neuron_drift(const Model& base, const Model* finetuned, const LoraAdapter* adapter,
                                              const ModuleMask& mask, const std::vector<std::vector<int32_t>>& sequences);
// Per layer the `top` neurons whose activation moved most (root mean square of the change over
// the tokens), largest first: {"layers": [{"layer", "rms_change" (all neurons), "top_share" (the
// top neurons' share of the layer's squared change), "neurons": [{"neuron", "rms_change",
// "base_rms"}]}], "tokens"}.
Json neurons_json(const std::vector<NeuronDrift>& layers, int64_t top);

// Per projection of a fine-tuned model: ||W_ft - W_base||_F / ||W_base||_F (and the absolute
// norm), for every layer; the shapes must match.
Json weight_update_norms(const Model& base, const Model& finetuned);

// The report: {"layers": [{"layer", "attention": {"relative_change", "mean_cosine"}, "ffn": {...}}],
// "tokens"}.
Json drift_json(const std::vector<LayerDrift>& layers);

}  // namespace taia
