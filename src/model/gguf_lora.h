// llama.cpp LoRA adapters in GGUF (general.type = adapter, adapter.type = lora): tensors
// blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a / .lora_b in
// ggml dimension order, scale = adapter.lora.alpha / rank. For LLaMA, lora_b carries llama.cpp's
// Q/K row permutation, as the base GGUF's weights do.
#pragma once
#include <map>
#include <optional>
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
// included) carried over, its tensors in its names and order. A tensor whose values the model
// did not change is copied byte for byte (any type); a changed one is written in `dtype` if given,
// else in its own type (every type taia reads it also writes). LLaMA Q/K rows are permuted back to llama.cpp's layout.
struct GgufModelExport {
  int64_t copied = 0;                           // tensors copied byte for byte
  std::map<std::string, std::string> rewritten;  // changed tensors: name -> "Q4_K -> Q8_0"
};
GgufModelExport save_gguf_model(Model& model, const std::string& base_gguf, const std::string& path,
                                std::optional<DType> dtype = std::nullopt);

}  // namespace taia
