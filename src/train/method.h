// What a training run trains, parsed once at the boundary (the CLI, the demo's experiment names)
// and carried as a value everywhere after: LoRA adapters, MoLoRA (LoRA experts on the FFN, plain
// LoRA elsewhere), or every selected weight (full fine-tuning).
#pragma once
#include <string>

#include "core/enum_words.h"

namespace taia {

enum class TrainMethod { Lora, Molora, Full };

// The word for each method, as --method and the demo's experiment names spell it.
const EnumWords<TrainMethod>& train_methods();
const char* method_name(TrainMethod m);  // "lora", "molora", "full"
// Throws "<origin>: method expected lora, molora or full, got '<name>'".
TrainMethod parse_method(const std::string& name, const std::string& origin);
// LoRA and MoLoRA train an adapter beside frozen weights; full fine-tuning trains the weights.
inline bool trains_adapter(TrainMethod m) { return m != TrainMethod::Full; }

}  // namespace taia
