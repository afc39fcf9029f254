// Hyper-parameters of a decoder (what the checkpoint fixes), separate from run-time
// parameters (threads, sampling), as llama.cpp separates hparams and cparams.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "kernels/rope.h"

namespace taia {

enum class Arch { Llama, Qwen2 };
const char* arch_name(Arch a);            // "llama", "qwen2"
const char* arch_hf_class(Arch a);        // "LlamaForCausalLM", "Qwen2ForCausalLM"

struct ModelConfig {
  Arch arch = Arch::Llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;  // double: config.json values round-trip exactly
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // LLaMA `attention_bias`; always true for Qwen2
  bool o_bias = false;    // LLaMA `attention_bias`; never for Qwen2
  bool mlp_bias = false;  // LLaMA `mlp_bias`
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Throws "<origin>: <field> expected ..., got ..." for an inconsistent configuration.
  void validate(const std::string& origin) const;
  int64_t parameter_count() const;
};

// Reads an HF config.json object (LlamaForCausalLM / Qwen2ForCausalLM).
ModelConfig config_from_hf_json(const Json& j, const std::string& origin);
// The HF config.json object for a config (what init-model and exports write).
Json config_to_hf_json(const ModelConfig& c);

}  // namespace taia
