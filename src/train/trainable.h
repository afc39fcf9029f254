// What trains in a run, decided in one place for the trainer and the parity probe
// (tests/tools/train_probe.cpp): the gradient buffers of full fine-tuning and the list of
// parameters the optimizer updates.
#pragma once
#include <vector>

#include "model/lora.h"
#include "train/engine.h"
#include "train/optimizer.h"

namespace taia {

// Full fine-tuning: the weights (and biases) of the targeted projections; with all seven
// targeted, every tensor (embeddings, norms and the LM head too), as HF's Trainer trains them.
FullGrads make_full_grads(const Model& model, const ModuleMask& targets);

// The optimizer's parameters: each tensor of `grads` (weight decay except on norms and biases,
// HF's rule), or each LoRA A and B of `lora` layer by layer (with weight decay, as PEFT). One of
// grads / lora is null.
std::vector<ParamRef> trainable_params(Model& model, FullGrads* grads, LoraAdapter* lora);

}  // namespace taia
