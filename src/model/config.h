// Hyper-parameters of a decoder (what the checkpoint fixes), separate from run-time
// parameters (threads, sampling), as llama.cpp separates hparams and cparams.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "kernels/attention.h"
#include "kernels/glu.h"
#include "kernels/rope.h"
#include "model/arch.h"
#include "model/tensor_names.h"

namespace taia {

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
  // HF's partial_rotary_factor (Phi-4-mini: 0.75): the first int(head_dim * factor) channels of
  // each query and key head rotate, the rest pass through.
  double partial_rotary_factor = 1.0;
  // HF's `no_rope_layers` (SmolLM3), despite its name 1 where the layer rotates and 0 where it
  // does not (a NoPE layer), one entry a layer. Empty: every layer rotates.
  std::vector<uint8_t> rotary_layers;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // LLaMA `attention_bias`; always true for Qwen2
  bool o_bias = false;    // LLaMA `attention_bias`; never for Qwen2
  bool mlp_bias = false;  // LLaMA `mlp_bias`
  // Qwen3's QK-norm: an RMSNorm over head_dim (weights q_norm, k_norm) on every query and key
  // head, after the projection and before RoPE.
  bool qk_norm = false;
  // Mistral's / Gemma's `sliding_window`: each query attends to the last sliding_window positions
  // (its own included); 0 = the whole context. sliding_window_pattern 0: every layer windowed
  // (Mistral); P >= 1: layer l windowed iff (l + 1) % P != 0, HF's rule (Gemma 2: P = 2, the
  // even layers; Gemma 3: P = 6; P = 1: none).
  int64_t sliding_window = 0;
  int64_t sliding_window_pattern = 0;
  // HF's `layer_types` when a config gives it (Gemma 2 / 3): 1 where the layer is windowed
  // ("sliding_attention"), 0 where global ("full_attention"), one entry a layer; it decides over
  // the pattern, as HF's config classes do. Empty: the pattern decides.
  std::vector<uint8_t> local_layers;
  // Gemma 2.
  Activation activation = Activation::Silu;
  bool norm_plus_one = false;        // RMSNorm multiplies by (1 + weight)
  bool scale_embeddings = false;     // embedding rows times sqrt(hidden_size)
  bool sandwich_norms = false;       // norms on the attention and FFN outputs too (NormLayout::Sandwich)
  double attn_softcap = 0;           // attention logits -> cap * tanh(logit / cap); 0: none
  double final_softcap = 0;          // final logits likewise
  double query_pre_attn_scalar = 0;  // attention scale 1 / sqrt(this); 0: head_dim
  // Gemma 3: the RoPE base of the windowed (local) layers, which take no rope_scaling; the global
  // layers use rope_theta and rope_scaling. 0: every layer uses rope_theta and rope_scaling.
  double rope_local_theta = 0;
  // Phi-3: q, k, v in one qkv_proj tensor and gate, up in one gate_up_proj (ProjLayout::Fused).
  bool fused_proj = false;
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Channels rotated per head: HF's int(head_dim * partial_rotary_factor).
  int64_t rotary_dims() const { return int64_t(double(head_dim) * partial_rotary_factor); }
  bool layer_rotates(int64_t layer) const { return rotary_layers.empty() || rotary_layers[size_t(layer)] != 0; }
  // The attention window of a layer (0: full causal attention).
  bool layer_is_local(int64_t layer) const {
    if (!local_layers.empty()) return local_layers[size_t(layer)] != 0;
    return sliding_window_pattern == 0 || (layer + 1) % sliding_window_pattern != 0;
  }
  int64_t layer_window(int64_t layer) const { return layer_is_local(layer) ? sliding_window : 0; }
  NormLayout norm_layout() const { return sandwich_norms ? NormLayout::Sandwich : NormLayout::PreNorm; }
  ProjLayout proj_layout() const { return fused_proj ? ProjLayout::Fused : ProjLayout::Split; }
  // Whether a layer rotates with the local RoPE (rope_local_theta, no scaling).
  bool layer_uses_local_rope(int64_t layer) const { return rope_local_theta > 0 && layer_is_local(layer); }
  // The attention logits' scale: 1 / sqrt(query_pre_attn_scalar or head_dim).
  float attention_scale() const;
  // The attention of a layer: heads, its window, Gemma's scale and soft-cap (decoder and engine).
  AttentionShape attention_shape(int64_t layer) const;
  float norm_weight_offset() const { return norm_plus_one ? 1.0f : 0.0f; }  // RMSNorm's (offset + w)
  // What embedding rows are multiplied by: Gemma's sqrt(hidden) rounded once to F32, as HF does.
  float embedding_scale() const;
  // Throws "<origin>: <field> expected ..., got ..." for an inconsistent configuration.
  void validate(const std::string& origin) const;
  int64_t parameter_count() const;
};

// The layer c.arch's profile builds (activation, norms, embedding scale, QK-norm, fused
// projections): what the config.json and GGUF readers start from.
void apply_arch_layer(ModelConfig& c);

// LongRope's default attention factor, HF's: sqrt(1 + ln(factor) / ln(original)) for factor > 1, else 1.
float longrope_attention_factor(double factor, int64_t original_max_position_embeddings);

// Reads an HF config.json object of an architecture in model/arch.h.
ModelConfig config_from_hf_json(const Json& j, const std::string& origin);
// The HF config.json object for a config (what init-model and exports write).
Json config_to_hf_json(const ModelConfig& c);

// Refuses a token id outside [0, vocab_size) of the model at model_path (naming the id and its
// index): what the CLI's --prompt-ids and the public API check before running.
void check_ids_in_vocab(const std::vector<int32_t>& ids, const ModelConfig& c, const std::string& model_path);

}  // namespace taia
