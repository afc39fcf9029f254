// PEFT LoRA adapter folders: adapter_config.json + adapter_model.safetensors with PEFT's key
// names (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, A [r, in], B [out, r]).
#pragma once
#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/tensor.h"

#include "model/lora.h"

namespace taia {

// What PEFT puts before a module name in its tensor keys.
inline constexpr const char* kPeftKeyPrefix = "base_model.model.";
// PEFT's tensor key for one LoRA matrix ("A" or "B") of the module in slot p.
std::string peft_key(int64_t layer, Proj p, const char* ab, ProjLayout layout);

// Writes the folder (created if needed); each file atomically.
void save_peft_adapter(const LoraAdapter& adapter, const std::string& dir, const std::string& base_model);
// adapter_config.json of a folder, every field checked; refuses pickle weights, DoRA,
// modules_to_save, non-LoRA types and modules outside the seven projections.
LoraConfig read_peft_config(const std::string& dir);
// adapter_config.json's content (`where` names it in errors), checked as read_peft_config does.
LoraConfig peft_config_from_json(const Json& config, const std::string& where);
// An adapter from PEFT-named tensors (any float dtype, converted to F32) for `model`: every
// module of config needs its A [r, in] and B [out, r]; a tensor no module takes is refused.
LoraAdapter peft_adapter_from_tensors(const LoraConfig& config, const std::vector<TensorView>& tensors,
                                      const std::string& where, const std::string& config_where,
                                      const ModelConfig& model);
// Reads a folder written by taia or PEFT for `model`; refuses what taia does not implement.
LoraAdapter load_peft_adapter(const std::string& dir, const ModelConfig& model);

}  // namespace taia
