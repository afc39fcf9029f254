#include "model/weights.h"

namespace taia {

std::pair<int64_t, int64_t> proj_shape(const ModelConfig& c, Proj p) {
  switch (p) {
    case Proj::Q: return {c.hidden_size, c.q_dim()};
    case Proj::K: case Proj::V: return {c.hidden_size, c.kv_dim()};
    case Proj::O: return {c.q_dim(), c.hidden_size};
    case Proj::Gate: case Proj::Up: return {c.hidden_size, c.intermediate_size};
    case Proj::Down: return {c.intermediate_size, c.hidden_size};
  }
  return {0, 0};
}

std::pair<int64_t, int64_t> module_shape(const ModelConfig& c, Proj slot) {
  const FusedGroup* g = c.proj_layout() == ProjLayout::Fused ? fused_group(slot) : nullptr;
  if (!g) return proj_shape(c, slot);
  int64_t out = 0;
  for (int i = 0; i < g->count; ++i) out += proj_shape(c, Proj(int(g->first) + i)).second;
  return {proj_shape(c, slot).first, out};
}

int64_t proj_row_offset(const ModelConfig& c, Proj p) {
  const FusedGroup* g = c.proj_layout() == ProjLayout::Fused ? fused_group(p) : nullptr;
  int64_t row = 0;
  for (int i = g ? int(g->first) : int(p); i < int(p); ++i) row += proj_shape(c, Proj(i)).second;
  return row;
}

const Linear& module_linear(const LayerWeights& w, Proj slot) {
  if (slot == Proj::Q && !w.qkv.weight.empty()) return w.qkv;
  if (slot == Proj::Gate && !w.gate_up.weight.empty()) return w.gate_up;
  return layer_proj(w, slot);
}

bool proj_has_bias(const ModelConfig& c, Proj p) {
  if (p == Proj::O) return c.o_bias;
  return proj_is_attention(p) ? c.qkv_bias : c.mlp_bias;
}

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const int64_t D = c.hidden_size;
  std::vector<ExpectedTensor> out;
  out.push_back({kEmbedTensor, {c.vocab_size, D}, true});
  // One tensor per module: a fused group's once, at its first projection.
  const ProjLayout pl = c.proj_layout();
  auto add_proj = [&](int64_t l, Proj p) {
    if (module_slot(p, pl) != p) return;
    const auto [in, outf] = module_shape(c, p);
    out.push_back({proj_tensor_name(l, p, "weight", pl), {outf, in}, true});
    if (proj_has_bias(c, p)) out.push_back({proj_tensor_name(l, p, "bias", pl), {outf}, false});
  };
  const NormLayout layout = c.norm_layout();
  auto add_norm = [&](int64_t l, LayerNorm n, int64_t size) { out.push_back({norm_tensor_name(l, n, layout), {size}, false}); };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    add_norm(l, LayerNorm::Attn, D);
    for (Proj p : {Proj::Q, Proj::K, Proj::V, Proj::O}) add_proj(l, p);
    if (c.qk_norm) {
      add_norm(l, LayerNorm::Q, c.head_dim);
      add_norm(l, LayerNorm::K, c.head_dim);
    }
    if (c.sandwich_norms) add_norm(l, LayerNorm::AttnOut, D);
    add_norm(l, LayerNorm::Ffn, D);
    for (Proj p : {Proj::Gate, Proj::Up, Proj::Down}) add_proj(l, p);
    if (c.sandwich_norms) add_norm(l, LayerNorm::FfnOut, D);
  }
  out.push_back({kFinalNormTensor, {D}, false});
  if (!c.tie_word_embeddings) out.push_back({kLmHeadTensor, {c.vocab_size, D}, true});
  return out;
}

bool is_norm_tensor(const ExpectedTensor& e) {
  return !e.is_linear && e.name.size() > 7 && e.name.compare(e.name.size() - 7, 7, ".weight") == 0;
}

std::vector<TensorView*> Model::named_tensors() {
  std::vector<TensorView*> out;
  for (const ExpectedTensor& e : expected_tensors(config)) out.push_back(find(e.name));
  return out;
}

std::vector<const TensorView*> Model::named_tensors() const {
  std::vector<const TensorView*> out;
  for (TensorView* t : const_cast<Model*>(this)->named_tensors()) out.push_back(t);  // find() only reads
  return out;
}

bool Model::has_block_weights() const {
  for (const TensorView* t : named_tensors())
    if (is_block_dtype(t->dtype)) return true;
  return false;
}

TensorView* Model::find(const std::string& name) {
  ModelWeights& w = weights;
  if (name == kEmbedTensor) return &w.embed;
  if (name == kFinalNormTensor) return &w.final_norm;
  if (name == kLmHeadTensor) return &w.lm_head;
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
  const NormLayout layout = config.norm_layout();
  const std::pair<LayerNorm, TensorView*> norms[] = {{LayerNorm::Attn, &L.attn_norm}, {LayerNorm::Ffn, &L.ffn_norm},
                                                     {LayerNorm::Q, &L.q_norm},        {LayerNorm::K, &L.k_norm},
                                                     {LayerNorm::AttnOut, &L.attn_out_norm},
                                                     {LayerNorm::FfnOut, &L.ffn_out_norm}};
  for (const auto& [n, view] : norms)
    if (name == norm_tensor_name(l, n, layout)) return view;
  if (config.fused_proj) {
    if (name == proj_tensor_name(l, Proj::Q, "weight", ProjLayout::Fused)) return &L.qkv.weight;
    if (name == proj_tensor_name(l, Proj::Gate, "weight", ProjLayout::Fused)) return &L.gate_up.weight;
  }
  for (int i = 0; i < kNumProj; ++i) {
    if (name == proj_tensor_name(l, Proj(i), "weight")) return &layer_proj(L, Proj(i)).weight;
    if (name == proj_tensor_name(l, Proj(i), "bias")) return &layer_proj(L, Proj(i)).bias;
  }
  return nullptr;
}

}  // namespace taia
