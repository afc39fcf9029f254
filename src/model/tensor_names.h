// Every tensor name taia reads or writes, HF and GGUF, in one table (llama.cpp keeps its
// LLM_TENSOR_NAMES the same way): the model-level tensors, and per layer the two norms and the
// seven projections, with the projection -> weight mapping. Adapters (PEFT keys, GGUF LoRA
// tensors) and the training engine's gradients build their names from here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace taia {

struct Linear;
struct LayerWeights;

// The seven linear projections of a decoder layer.
enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kNumProj = 7;

struct ProjNames {
  const char* module;  // HF module: "q_proj"
  const char* parent;  // HF parent module: "self_attn" or "mlp"
  const char* gguf;    // GGUF tensor stem: "attn_q"
};
const char* proj_name(Proj p);    // "q_proj", ..., "down_proj"
const char* proj_parent(Proj p);  // "self_attn" or "mlp"
bool proj_is_attention(Proj p);
std::optional<Proj> proj_from_name(const std::string& name);  // "q", "q_proj", "gate", ...

// Phi-3 stores q, k, v in one tensor self_attn.qkv_proj and gate, up in mlp.gate_up_proj (rows in
// that order): PEFT adapts the fused modules and llama.cpp names them attn_qkv and ffn_up. In the
// Fused layout a LoRA module sits at its group's first projection (Q or Gate) and covers the group.
enum class ProjLayout { Split, Fused };
struct FusedGroup {
  const char* module;  // "qkv_proj"
  const char* gguf;    // "attn_qkv"
  Proj first;          // Q
  int count;           // 3
};
// The fused group p belongs to (Q, K, V -> qkv_proj; Gate, Up -> gate_up_proj), or null (O, Down).
const FusedGroup* fused_group(Proj p);
// The projection whose slot holds p's module and tensor: p itself, or its fused group's first.
Proj module_slot(Proj p, ProjLayout layout);
// The projections a module name stands for: "q" / "q_proj" -> {Q}; "qkv_proj" -> {Q, K, V};
// "gate_up_proj" -> {Gate, Up}; empty if it names none.
std::vector<Proj> projs_from_name(const std::string& name);

// The projection's weights in a layer (q -> w.q, ..., down -> w.down).
const Linear& layer_proj(const LayerWeights& w, Proj p);
Linear& layer_proj(LayerWeights& w, Proj p);

// The norms of a layer: before attention and before the FFN; Qwen3's per-head QK-norm; Gemma 2's
// norms on the attention and FFN outputs (before their residual adds).
enum class LayerNorm { Attn, Ffn, Q, K, AttnOut, FfnOut };

// How a family names its layer norms in HF checkpoints. PreNorm (LLaMA, Qwen, Mistral):
// input_layernorm before attention, post_attention_layernorm before the FFN. Sandwich (Gemma 2):
// input_layernorm, post_attention_layernorm on the attention output, pre_feedforward_layernorm,
// post_feedforward_layernorm. The same HF name means another norm in each.
enum class NormLayout { PreNorm, Sandwich };

// HF names.
inline constexpr const char* kEmbedTensor = "model.embed_tokens.weight";
inline constexpr const char* kFinalNormTensor = "model.norm.weight";
inline constexpr const char* kLmHeadTensor = "lm_head.weight";
// The module holding p: "model.layers.3.self_attn.q_proj" (Fused: "...self_attn.qkv_proj" for q, k, v).
std::string module_name(int64_t layer, Proj p, ProjLayout layout = ProjLayout::Split);
// + ".weight" / ".bias"
std::string proj_tensor_name(int64_t layer, Proj p, const char* kind, ProjLayout layout = ProjLayout::Split);
// "model.layers.3.input_layernorm.weight"
std::string norm_tensor_name(int64_t layer, LayerNorm n, NormLayout layout);
// The projection an HF tensor name belongs to (its weight or bias), if any; a fused tensor's
// first projection (qkv_proj -> Q, gate_up_proj -> Gate).
std::optional<Proj> proj_of_tensor(const std::string& hf_name);

// GGUF names. rope_freqs.weight (llama3 frequency factors) is a GGUF-only tensor.
inline constexpr const char* kGgufRopeFreqsTensor = "rope_freqs.weight";
// "blk.3.attn_q" + suffix (Fused: "blk.3.attn_qkv" for q, k, v; "blk.3.ffn_up" for gate, up)
std::string gguf_proj_tensor_name(int64_t layer, Proj p, const std::string& suffix,
                                  ProjLayout layout = ProjLayout::Split);
// The GGUF tensor name of an HF tensor name ("model.layers.3.self_attn.q_proj.weight" ->
// "blk.3.attn_q.weight"); empty if there is none.
std::string gguf_tensor_name(const std::string& hf_name, NormLayout layout);
// The decoder layer of an HF tensor name ("model.layers.3.mlp.up_proj.weight" -> 3); -1 for the
// model-level tensors (embeddings, final norm, LM head).
int64_t hf_tensor_layer(const std::string& hf_name);

}  // namespace taia
