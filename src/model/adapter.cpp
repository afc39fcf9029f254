#include "model/adapter.h"

#include "core/mmap_file.h"
#include "model/gguf_lora.h"
#include "model/peft_adapter.h"

namespace taia {

std::unique_ptr<LoraAdapter> load_adapter(const std::string& path, const ModelConfig& config) {
  return std::make_unique<LoraAdapter>(is_directory(path) ? load_peft_adapter(path, config)
                                                          : load_gguf_lora(path, config));
}

int64_t count_modules(const LoraAdapter& adapter, const ModuleMask& mask) {
  int64_t n = 0;
  for (const auto& layer : adapter.layers)
    for (int i = 0; i < kNumProj; ++i)
      if (layer[size_t(i)] && mask[size_t(i)]) ++n;
  for (const auto& layer : adapter.molora.layers)
    for (int i = 0; i < kNumProj; ++i)
      if (layer[size_t(i)] && mask[size_t(i)]) ++n;
  return n;
}

int64_t keep_modules(LoraAdapter& adapter, const ModuleMask& mask) {
  check_fused_targets(mask, adapter.layout, "[adapter] modules");
  for (auto& layer : adapter.layers)
    for (int i = 0; i < kNumProj; ++i)
      if (!mask[size_t(i)]) layer[size_t(i)].reset();
  for (auto& layer : adapter.molora.layers)
    for (int i = 0; i < kNumProj; ++i)
      if (!mask[size_t(i)]) layer[size_t(i)].reset();
  for (int i = 0; i < kNumProj; ++i)
    adapter.molora.config.targets[size_t(i)] = adapter.molora.config.targets[size_t(i)] && mask[size_t(i)];
  if (!adapter.has_experts(ModuleMask{true, true, true, true, true, true, true})) adapter.molora = MoloraExperts{};
  for (int i = 0; i < kNumProj; ++i) adapter.config.targets[size_t(i)] = adapter.config.targets[size_t(i)] && mask[size_t(i)];
  return count_modules(adapter, mask);
}

}  // namespace taia
