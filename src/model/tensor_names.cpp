#include "model/tensor_names.h"

#include "model/weights.h"

#include <iterator>
#include <utility>

namespace taia {
namespace {

constexpr ProjNames kProjNames[kNumProj] = {
    {"q_proj", "self_attn", "attn_q"},   {"k_proj", "self_attn", "attn_k"}, {"v_proj", "self_attn", "attn_v"},
    {"o_proj", "self_attn", "attn_output"}, {"gate_proj", "mlp", "ffn_gate"}, {"up_proj", "mlp", "ffn_up"},
    {"down_proj", "mlp", "ffn_down"},
};

constexpr FusedGroup kFusedGroups[] = {{"qkv_proj", "attn_qkv", Proj::Q, 3}, {"gate_up_proj", "ffn_up", Proj::Gate, 2}};

struct NormNames {
  LayerNorm norm;
  const char* hf;    // "input_layernorm"
  const char* gguf;  // "attn_norm"
};
constexpr NormNames kPreNormNames[] = {{LayerNorm::Attn, "input_layernorm", "attn_norm"},
                                       {LayerNorm::Ffn, "post_attention_layernorm", "ffn_norm"},
                                       {LayerNorm::Q, "self_attn.q_norm", "attn_q_norm"},
                                       {LayerNorm::K, "self_attn.k_norm", "attn_k_norm"}};
constexpr NormNames kSandwichNames[] = {{LayerNorm::Attn, "input_layernorm", "attn_norm"},
                                        {LayerNorm::AttnOut, "post_attention_layernorm", "post_attention_norm"},
                                        {LayerNorm::Ffn, "pre_feedforward_layernorm", "ffn_norm"},
                                        {LayerNorm::FfnOut, "post_feedforward_layernorm", "post_ffw_norm"},
                                        {LayerNorm::Q, "self_attn.q_norm", "attn_q_norm"},
                                        {LayerNorm::K, "self_attn.k_norm", "attn_k_norm"}};

std::pair<const NormNames*, const NormNames*> norm_table(NormLayout layout) {
  if (layout == NormLayout::Sandwich) return {std::begin(kSandwichNames), std::end(kSandwichNames)};
  return {std::begin(kPreNormNames), std::end(kPreNormNames)};
}

const NormNames* norm_names(LayerNorm n, NormLayout layout) {
  const auto [first, last] = norm_table(layout);
  for (const NormNames* x = first; x != last; ++x)
    if (x->norm == n) return x;
  return nullptr;
}

// Model-level tensors: HF name -> GGUF name.
constexpr std::pair<const char*, const char*> kModelTensors[] = {
    {kEmbedTensor, "token_embd.weight"}, {kFinalNormTensor, "output_norm.weight"}, {kLmHeadTensor, "output.weight"}};

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

}  // namespace

const char* proj_name(Proj p) { return kProjNames[int(p)].module; }
const char* proj_parent(Proj p) { return kProjNames[int(p)].parent; }
bool proj_is_attention(Proj p) { return int(p) <= int(Proj::O); }

std::optional<Proj> proj_from_name(const std::string& name) {
  for (int i = 0; i < kNumProj; ++i) {
    const std::string full = kProjNames[i].module;
    if (name == full || name == full.substr(0, full.size() - 5)) return Proj(i);
  }
  return std::nullopt;
}

const FusedGroup* fused_group(Proj p) {
  for (const FusedGroup& g : kFusedGroups)
    if (int(p) >= int(g.first) && int(p) < int(g.first) + g.count) return &g;
  return nullptr;
}

Proj module_slot(Proj p, ProjLayout layout) {
  const FusedGroup* g = layout == ProjLayout::Fused ? fused_group(p) : nullptr;
  return g ? g->first : p;
}

std::vector<Proj> projs_from_name(const std::string& name) {
  if (const auto p = proj_from_name(name)) return {*p};
  for (const FusedGroup& g : kFusedGroups) {
    const std::string full = g.module;
    if (name == full || name == full.substr(0, full.size() - 5)) {
      std::vector<Proj> out;
      for (int i = 0; i < g.count; ++i) out.push_back(Proj(int(g.first) + i));
      return out;
    }
  }
  return {};
}

Linear& layer_proj(LayerWeights& w, Proj p) {
  switch (p) {
    case Proj::Q: return w.q;
    case Proj::K: return w.k;
    case Proj::V: return w.v;
    case Proj::O: return w.o;
    case Proj::Gate: return w.gate;
    case Proj::Up: return w.up;
    case Proj::Down: return w.down;
  }
  return w.q;
}

const Linear& layer_proj(const LayerWeights& w, Proj p) { return layer_proj(const_cast<LayerWeights&>(w), p); }

std::string module_name(int64_t layer, Proj p, ProjLayout layout) {
  const FusedGroup* g = layout == ProjLayout::Fused ? fused_group(p) : nullptr;
  return layer_prefix(layer) + proj_parent(p) + "." + (g ? g->module : proj_name(p));
}

std::string proj_tensor_name(int64_t layer, Proj p, const char* kind, ProjLayout layout) {
  return module_name(layer, p, layout) + "." + kind;
}

std::string norm_tensor_name(int64_t layer, LayerNorm n, NormLayout layout) {
  const NormNames* names = norm_names(n, layout);
  return names ? layer_prefix(layer) + names->hf + ".weight" : "";
}

std::optional<Proj> proj_of_tensor(const std::string& hf_name) {
  for (const FusedGroup& g : kFusedGroups)
    if (hf_name.find(std::string(".") + proj_parent(g.first) + "." + g.module + ".") != std::string::npos)
      return g.first;
  for (int i = 0; i < kNumProj; ++i) {
    const std::string stem = std::string(".") + kProjNames[i].parent + "." + kProjNames[i].module + ".";
    if (hf_name.find(stem) != std::string::npos) return Proj(i);
  }
  return std::nullopt;
}

std::string gguf_proj_tensor_name(int64_t layer, Proj p, const std::string& suffix, ProjLayout layout) {
  const FusedGroup* g = layout == ProjLayout::Fused ? fused_group(p) : nullptr;
  return "blk." + std::to_string(layer) + "." + (g ? g->gguf : kProjNames[int(p)].gguf) + suffix;
}

int64_t hf_tensor_layer(const std::string& hf) {
  const std::string prefix = "model.layers.";
  if (hf.compare(0, prefix.size(), prefix) != 0) return -1;
  const size_t dot = hf.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return -1;
  int64_t layer = 0;
  for (size_t i = prefix.size(); i < dot; ++i) {
    if (hf[i] < '0' || hf[i] > '9') return -1;
    layer = layer * 10 + (hf[i] - '0');
  }
  return layer;
}

std::string gguf_tensor_name(const std::string& hf, NormLayout layout) {
  for (const auto& [h, g] : kModelTensors)
    if (hf == h) return g;
  const int64_t layer_index = hf_tensor_layer(hf);
  if (layer_index < 0) return "";
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  const std::string layer = std::to_string(layer_index);
  std::string rest = hf.substr(dot + 1);
  std::string kind = "weight";
  const size_t last = rest.rfind('.');
  if (last != std::string::npos) {
    kind = rest.substr(last + 1);
    rest = rest.substr(0, last);
  }
  const auto [norms_begin, norms_end] = norm_table(layout);
  for (const NormNames* n = norms_begin; n != norms_end; ++n)
    if (rest == n->hf) return "blk." + layer + "." + n->gguf + "." + kind;
  for (const ProjNames& p : kProjNames)
    if (rest == std::string(p.parent) + "." + p.module) return "blk." + layer + "." + p.gguf + "." + kind;
  for (const FusedGroup& g : kFusedGroups)
    if (rest == std::string(proj_parent(g.first)) + "." + g.module) return "blk." + layer + "." + g.gguf + "." + kind;
  return "";
}

}  // namespace taia
