// The one adapter loader of the product: a PEFT LoRA folder or a llama.cpp GGUF LoRA file (the
// kind is told by the path: a folder is PEFT). generate, forward, eval, merge, export and the
// demo load adapters through it (inspect reads PEFT folders itself: it needs no base model).
#pragma once
#include <memory>
#include <string>

#include "model/lora.h"

namespace taia {

std::unique_ptr<LoraAdapter> load_adapter(const std::string& path, const ModelConfig& config);

// Keeps only the modules in `mask` and narrows config.targets to them (a PEFT folder of one
// mode's modules). Returns the number of modules kept.
int64_t keep_modules(LoraAdapter& adapter, const ModuleMask& mask);

// The number of modules of `adapter` in `mask`.
int64_t count_modules(const LoraAdapter& adapter, const ModuleMask& mask);

}  // namespace taia
