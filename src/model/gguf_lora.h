// llama.cpp LoRA adapters in GGUF (general.type = adapter, adapter.type = lora): tensors
// blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a / .lora_b in
// ggml dimension order, scale = adapter.lora.alpha / rank. For LLaMA, lora_b carries llama.cpp's
// Q/K row permutation, as the base GGUF's weights do.
#pragma once
#include <string>

#include "model/lora.h"
#include "model/weights.h"

namespace taia {

// Writes the modules of `adapter` selected by `mask`. Each module's own scale is folded into B
// (alpha is written as 1 and B scaled by scale * rank) so per-module ranks, alphas and rsLoRA
// all survive llama.cpp's single-alpha format exactly.
void save_gguf_lora(const LoraAdapter& adapter, const ModuleMask& mask, const ModelConfig& model,
                    const std::string& path);
LoraAdapter load_gguf_lora(const std::string& path, const ModelConfig& model);

}  // namespace taia

namespace taia {

// A merged model as GGUF, for a model loaded from GGUF: the base file's metadata (tokenizer
// included) carried over, every weight written as F32 in the base's tensor names and order,
// LLaMA Q/K rows permuted back to llama.cpp's layout.
void save_gguf_model(Model& model, const std::string& base_gguf, const std::string& path);

}  // namespace taia
