#include "model/weights.h"

namespace taia {

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, D}, true});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {D}, false});
    out.push_back({p + "self_attn.q_proj.weight", {Q, D}, true});
    if (c.qkv_bias) out.push_back({p + "self_attn.q_proj.bias", {Q}, false});
    out.push_back({p + "self_attn.k_proj.weight", {KV, D}, true});
    if (c.qkv_bias) out.push_back({p + "self_attn.k_proj.bias", {KV}, false});
    out.push_back({p + "self_attn.v_proj.weight", {KV, D}, true});
    if (c.qkv_bias) out.push_back({p + "self_attn.v_proj.bias", {KV}, false});
    out.push_back({p + "self_attn.o_proj.weight", {D, Q}, true});
    if (c.o_bias) out.push_back({p + "self_attn.o_proj.bias", {D}, false});
    out.push_back({p + "post_attention_layernorm.weight", {D}, false});
    out.push_back({p + "mlp.gate_proj.weight", {I, D}, true});
    if (c.mlp_bias) out.push_back({p + "mlp.gate_proj.bias", {I}, false});
    out.push_back({p + "mlp.up_proj.weight", {I, D}, true});
    if (c.mlp_bias) out.push_back({p + "mlp.up_proj.bias", {I}, false});
    out.push_back({p + "mlp.down_proj.weight", {D, I}, true});
    if (c.mlp_bias) out.push_back({p + "mlp.down_proj.bias", {D}, false});
  }
  out.push_back({"model.norm.weight", {D}, false});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, D}, true});
  return out;
}

std::vector<TensorView*> Model::named_tensors() {
  std::vector<TensorView*> out;
  for (const ExpectedTensor& e : expected_tensors(config)) out.push_back(find(e.name));
  return out;
}

TensorView* Model::find(const std::string& name) {
  ModelWeights& w = weights;
  if (name == "model.embed_tokens.weight") return &w.embed;
  if (name == "model.norm.weight") return &w.final_norm;
  if (name == "lm_head.weight") return &w.lm_head;
  const std::string prefix = "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return nullptr;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return nullptr;
  int64_t l = -1;
  try {
    l = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  } catch (...) {
    return nullptr;
  }
  if (l < 0 || l >= int64_t(w.layers.size())) return nullptr;
  LayerWeights& L = w.layers[size_t(l)];
  const std::string rest = name.substr(dot + 1);
  struct Entry { const char* suffix; TensorView* view; };
  const Entry entries[] = {
      {"input_layernorm.weight", &L.attn_norm},     {"post_attention_layernorm.weight", &L.ffn_norm},
      {"self_attn.q_proj.weight", &L.q.weight},     {"self_attn.q_proj.bias", &L.q.bias},
      {"self_attn.k_proj.weight", &L.k.weight},     {"self_attn.k_proj.bias", &L.k.bias},
      {"self_attn.v_proj.weight", &L.v.weight},     {"self_attn.v_proj.bias", &L.v.bias},
      {"self_attn.o_proj.weight", &L.o.weight},     {"self_attn.o_proj.bias", &L.o.bias},
      {"mlp.gate_proj.weight", &L.gate.weight},     {"mlp.gate_proj.bias", &L.gate.bias},
      {"mlp.up_proj.weight", &L.up.weight},         {"mlp.up_proj.bias", &L.up.bias},
      {"mlp.down_proj.weight", &L.down.weight},     {"mlp.down_proj.bias", &L.down.bias},
  };
  for (const Entry& e : entries)
    if (rest == e.suffix) return e.view;
  return nullptr;
}

}  // namespace taia
