// The architectures taia runs, each one entry of named fields (arch.cpp): its names in HF and
// GGUF and the layer it builds by default. config.cpp reads a config.json through the entry,
// loader.cpp and gguf_lora.cpp the GGUF facts, and the layer recipe (layer_recipe.h) turns the
// resulting ModelConfig into sub-steps; the decoder and the training engine never look here.
//
// How to add an architecture: docs/ARCHITECTURE.md, "Adding an architecture".
#pragma once
#include <string>

#include "kernels/glu.h"
#include "model/tensor_names.h"

namespace taia {

enum class Arch { Llama, Qwen2, Mistral, Qwen3, Gemma2, Gemma3, Phi3, SmolLM3 };

// Which projections carry biases and which config.json keys say so.
enum class BiasRule {
  AttentionAndMlpKeys,  // `attention_bias` on q, k, v and o, `mlp_bias` on the MLP (LLaMA, SmolLM3)
  QkvAlways,            // q, k, v always, o never (Qwen2)
  AttentionKey,         // `attention_bias` on q, k, v and o (Qwen3, Gemma)
  None,                 // none, and `attention_bias: true` refused (Mistral, Phi-3)
};

// Where a layer's attention window comes from.
enum class WindowRule {
  None,           // no window; `use_sliding_window: true` refused (Qwen2, Qwen3, LLaMA)
  EveryLayer,     // `sliding_window` on every layer, null for none (Mistral, Phi-3)
  GemmaPattern,   // every P-th layer global, or `layer_types` as written (Gemma 2: P = 2, Gemma 3: 6)
  LayerTypesKey,  // `use_sliding_window` with `layer_types` (SmolLM3)
};

struct ArchProfile {
  Arch arch;
  const char* model_type;  // HF config.json "model_type"
  const char* hf_class;    // HF "architectures"[0]
  // GGUF: general.architecture (llama.cpp converts Mistral as "llama"); nullptr: taia neither
  // reads nor writes this family as GGUF (llama.cpp's snapshot has no converter for it).
  const char* gguf_arch = nullptr;
  bool gguf_permutes_qk = false;     // llama.cpp interleaves the rotary pairs of Q/K rows (LLaMA-style)
  bool gguf_norms_plus_one = false;  // llama.cpp stores the (1 + weight) norms with the 1 added
  // The layer.
  Activation activation = Activation::Silu;
  NormLayout norms = NormLayout::PreNorm;  // Sandwich: the attention and MLP outputs normalised too
  bool norm_plus_one = false;              // RMSNorm multiplies by (1 + weight)
  bool scale_embeddings = false;           // embedding rows times sqrt(hidden)
  bool qk_norm = false;                    // RMSNorm over head_dim on q and k heads
  ProjLayout projections = ProjLayout::Split;  // Fused: qkv_proj and gate_up_proj (Phi-3)
  BiasRule biases = BiasRule::AttentionAndMlpKeys;
  WindowRule window = WindowRule::None;
  bool reads_partial_rotary = false;  // `partial_rotary_factor` honoured (else refused unless 1)
  bool reads_no_rope_layers = false;  // `no_rope_layers` / `no_rope_layer_interval` (SmolLM3's NoPE layers)
  // HF config-class defaults for absent keys.
  int64_t default_head_dim = 0;  // 0: hidden_size / num_attention_heads
  double default_rope_theta = 10000.0;
  bool default_tied = false;
};

const ArchProfile& arch_profile(Arch a);
const char* arch_name(Arch a);      // model_type
const char* arch_hf_class(Arch a);  // hf_class
// The entry whose model_type, else whose hf_class, matches; nullptr if none.
const ArchProfile* find_arch(const std::string& model_type, const std::string& hf_class);
// "'llama', 'qwen2', ..." (model types) and "LlamaForCausalLM, ..." for messages.
std::string arch_model_types();
std::string arch_hf_classes();
// The architecture of a GGUF general.architecture ("llama" is LLaMA: llama.cpp writes Mistral so
// too); an unknown or unsupported one is refused naming `origin`.
Arch arch_from_gguf(const std::string& gguf_arch, const std::string& origin);
// general.architecture for a GGUF file of this family; refused naming `what` when there is none.
const char* arch_gguf_name(Arch a, const std::string& what);

}  // namespace taia
