// Merging for TAIA: LoRA adapters folded into the weights for the chosen modules, and the
// module-by-module combination of a base and a fully fine-tuned model.
#pragma once
#include <string>

#include "model/lora.h"
#include "model/weights.h"

namespace taia {

// W += scale * B A for every adapter module in `mask` (computed in double, rounded once to the
// weight's storage type).
void merge_adapter(Model& model, const LoraAdapter& adapter, const ModuleMask& mask);

struct RevertSet {
  bool embeddings = false, norms = false, lm_head = false;
};
RevertSet parse_revert(const std::string& list);  // "embeddings,norms,lm_head" (any subset)

// Full fine-tuning TAIA: into `finetuned`, copies back from `base` every projection weight (and
// bias) NOT in `mask`, plus the reverted parts. With mask = taia, q/k/v/o stay fine-tuned and
// gate/up/down return to the base, as the official implementation does. Returns, per tensor
// name, "base" or "finetuned" (the provenance the tests check).
std::vector<std::pair<std::string, std::string>> merge_full(Model& finetuned, const Model& base, const ModuleMask& mask,
                                                           const RevertSet& revert);

}  // namespace taia
