// The update-size controls (model/modes.h: random-half[-N], scaled) applied to an update: a
// LoRA adapter (a derived adapter run with every module) or a fully fine-tuned model (merged
// with its base module by module). Every mode is a weight w per (layer, module slot) on that
// module's update dW: w = 0 drops it, 1 keeps it, anything else scales it (W = W0 + w dW).
// Plain modes give 0 / 1 from their mask; the controls compute theirs from the update's sizes.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/json_util.h"
#include "model/lora.h"
#include "model/modes.h"
#include "model/weights.h"

namespace taia {

// One trained module's update: its trained parameters (LoRA: rank x (in + out); full: the
// weight's and bias's elements) and ||dW||_F^2 (LoRA: scale^2 ||B A||^2, weight only; full:
// weight and bias), in double.
struct ModuleUpdate {
  int64_t params = 0;
  double norm2 = 0;
};
// [layer][slot]: a module's update; nullopt where nothing was trained (or a fused group's
// other slots: the group's module sits in its first slot).
using UpdateSizes = std::vector<std::array<std::optional<ModuleUpdate>, kNumProj>>;
// [layer][slot]: the weight a mode puts on each module's update.
using ModuleWeights = std::vector<std::array<double, kNumProj>>;

UpdateSizes lora_update_sizes(const LoraAdapter& adapter);
// finetuned - base for every projection (refuses quantized weights and other shapes).
UpdateSizes full_update_sizes(const Model& finetuned, const Model& base);

// The weights of `mode` over these updates: a plain mode its mask (1 on the modules in it), a
// control as model/modes.h defines it.
ModuleWeights mode_weights(const ModeSpec& mode, const UpdateSizes& sizes);

// What a mode keeps beside what TAIA keeps (the controls' report): {"parameters", "norm",
// "attention_parameters", "attention_norm", "modules": the kept modules' names,
// "layer_factors": [...] (each layer's largest weight)}.
Json describe_mode_weights(const UpdateSizes& sizes, const ModuleWeights& weights, ProjLayout layout);

// A copy of `adapter` carrying the weights: modules at 0 left out, B scaled by w elsewhere. Run
// with every module (parse_mode("vanilla")) it applies W0 + w dW. Refuses MoLoRA experts (the
// controls are defined on LoRA modules).
LoraAdapter weighted_adapter(const LoraAdapter& adapter, const ModuleWeights& weights);

// The adapter and mask a decoder runs a mode with: a plain mode's mask over `adapter` as it is,
// a control's derived adapter (owned by `derived`) with every module. A mode with updates and no
// adapter is refused, naming `where` and saying `how` to give one.
struct ModeAdapter {
  const LoraAdapter* adapter = nullptr;
  ModuleMask mask{};
  std::shared_ptr<const LoraAdapter> derived;
};
ModeAdapter adapter_for_mode(const LoraAdapter* adapter, const ModeSpec& mode, const char* where,
                             const char* how = "");

// For a caller holding its own copy of the adapter: a control applied in place (the adapter
// becomes weighted_adapter's), returning the mask to run it with (a plain mode: its own mask).
ModuleMask apply_mode_in_place(LoraAdapter& adapter, const ModeSpec& mode);

// Full fine-tuning: into `finetuned`, W = W0 + w (W - W0) for every projection weight and bias
// (w = 0 copies the base's bits, w = 1 leaves the fine-tuned ones; others in double, rounded
// once to the storage type).
void merge_full_weighted(Model& finetuned, const Model& base, const ModuleWeights& weights);

}  // namespace taia
