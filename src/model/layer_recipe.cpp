#include "model/layer_recipe.h"

#include <algorithm>

namespace taia {

namespace {

RotaryStep rotary_step(const ModelConfig& c, int64_t layer) {
  RotaryStep r;
  r.dims = c.rotary_dims();
  if (!c.layer_rotates(layer))
    r.table = RotaryTable::None;
  else if (c.layer_uses_local_rope(layer))
    r.table = RotaryTable::Local;
  return r;
}

LayerRecipe layer_recipe(const ModelConfig& c, const NormStep& norm, int64_t layer) {
  LayerRecipe r;
  r.norm = norm;
  r.qk_norm = c.qk_norm;
  r.rotary = rotary_step(c, layer);
  r.attention = c.attention_shape(layer);
  r.output_norms = c.sandwich_norms;
  r.activation = c.activation;
  return r;
}

}  // namespace

bool ModelRecipe::uses(RotaryTable t) const {
  for (const LayerRecipe& l : layers)
    if (l.rotary.table == t) return true;
  return false;
}

bool ModelRecipe::any_qk_norm() const {
  return std::any_of(layers.begin(), layers.end(), [](const LayerRecipe& l) { return l.qk_norm; });
}
bool ModelRecipe::any_output_norms() const {
  return std::any_of(layers.begin(), layers.end(), [](const LayerRecipe& l) { return l.output_norms; });
}
bool ModelRecipe::any_attention_softcap() const {
  return std::any_of(layers.begin(), layers.end(), [](const LayerRecipe& l) { return l.attention.softcap > 0; });
}

ModelRecipe model_recipe(const ModelConfig& c) {
  ModelRecipe m;
  m.embedding_scale = c.embedding_scale();
  m.norm = NormStep{float(c.rms_norm_eps), c.norm_weight_offset()};
  m.final_softcap = float(c.final_softcap);
  m.rotary_dims = c.rotary_dims();
  for (int64_t l = 0; l < c.num_layers; ++l) m.layers.push_back(layer_recipe(c, m.norm, l));
  return m;
}

}  // namespace taia
