#include "model/lora.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "tokenizer/regex.h"

namespace taia {

std::optional<std::pair<int64_t, double>> LoraConfig::module_rank_alpha(int64_t layer, Proj p,
                                                                       ProjLayout layout) const {
  if (!targets[size_t(p)]) return std::nullopt;
  if (!layers_to_transform.empty() &&
      std::find(layers_to_transform.begin(), layers_to_transform.end(), layer) == layers_to_transform.end())
    return std::nullopt;
  const std::string name = module_name(layer, p, layout);
  if (!target_regex.empty()) {
    Regex re("^(?:" + target_regex + ")$", "target_modules");
    if (re.find_all(name).empty()) return std::nullopt;
  }
  int64_t r = rank;
  double a = alpha;
  // PEFT: the first pattern key k with re.match(".*\.k$", name) wins.
  auto matches = [&](const std::string& key) {
    Regex re("^(?:.*\\.)?(?:" + key + ")$", "rank_pattern/alpha_pattern key");
    return !re.find_all(name).empty();
  };
  for (const auto& [key, value] : rank_pattern)
    if (matches(key)) {
      r = value;
      break;
    }
  for (const auto& [key, value] : alpha_pattern)
    if (matches(key)) {
      a = value;
      break;
    }
  return std::make_pair(r, a);
}

double lora_scale(int64_t rank, double alpha, bool use_rslora) {
  return use_rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
}

double LoraConfig::scale(int64_t r, double a) const { return lora_scale(r, a, use_rslora); }

LoraAdapter LoraAdapter::create(const ModelConfig& model, const LoraConfig& config, uint64_t seed) {
  TAIA_CHECK(config.rank > 0 && config.rank <= 65536, "[lora] rank expected 1..65536, got ", config.rank);
  TAIA_CHECK(config.dropout >= 0 && config.dropout < 1, "[lora] dropout expected in [0, 1), got ", config.dropout);
  for (int64_t l : config.layers_to_transform)
    TAIA_CHECK(l >= 0 && l < model.num_layers, "[lora] layers_to_transform entry ", l, " is outside 0..",
               model.num_layers - 1);
  LoraAdapter a;
  a.config = config;
  a.layout = model.proj_layout();
  check_fused_targets(config.targets, a.layout, "[lora] targets");
  a.layers.resize(size_t(model.num_layers));
  Rng rng(seed);
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      if (module_slot(p, a.layout) != p) continue;  // covered by its fused group's module
      const auto ra = config.module_rank_alpha(l, p, a.layout);
      if (!ra) continue;
      TAIA_CHECK(ra->first > 0, "[lora] rank of ", a.module_name(l, p), " expected > 0, got ", ra->first);
      LoraModule m;
      std::tie(m.in, m.out) = module_shape(model, p);
      m.rank = ra->first;
      m.scale = float(config.scale(ra->first, ra->second));
      m.A.resize(size_t(m.rank * m.in));
      // kaiming_uniform_(a=sqrt(5)): bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
      const float bound = 1.0f / std::sqrt(float(m.in));
      for (float& v : m.A) v = (2.0f * rng.uniform() - 1.0f) * bound;
      m.B.assign(size_t(m.out * m.rank), 0.0f);
      m.dA.assign(m.A.size(), 0.0f);
      m.dB.assign(m.B.size(), 0.0f);
      a.layers[size_t(l)][size_t(i)] = std::move(m);
    }
  return a;
}

LoraAdapter LoraAdapter::create_with_experts(const ModelConfig& model, const LoraConfig& config,
                                             const MoloraConfig& molora, uint64_t seed) {
  LoraConfig lora = config;  // the experts' projections leave LoRA's targets
  for (int i = 0; i < kNumProj; ++i) lora.targets[size_t(i)] = lora.targets[size_t(i)] && !molora.targets[size_t(i)];
  LoraAdapter a = create(model, lora, seed);
  a.molora = MoloraExperts::create(model, molora, lora.rank, float(lora.scale(lora.rank, lora.alpha)), seed);
  return a;
}

LoraModule* LoraAdapter::find(int64_t layer, Proj p) {
  if (layer < 0 || layer >= int64_t(layers.size())) return nullptr;
  auto& m = layers[size_t(layer)][size_t(p)];
  return m ? &*m : nullptr;
}

const LoraModule* LoraAdapter::find(int64_t layer, Proj p) const {
  return const_cast<LoraAdapter*>(this)->find(layer, p);
}

std::optional<LoraView> LoraAdapter::view(int64_t layer, Proj p, int64_t row0, int64_t rows) {
  LoraModule* m = find(layer, module_slot(p, layout));
  if (!m) return std::nullopt;
  TAIA_CHECK(row0 >= 0 && rows >= 0 && row0 + rows <= m->out, "[lora] rows ", row0, "..", row0 + rows, " of ",
             module_name(layer, p), " expected within its ", m->out, " rows");
  LoraView v;
  v.rank = m->rank;
  v.in = m->in;
  v.out = rows;
  v.scale = m->scale;
  v.A = m->A.data();
  v.dA = m->dA.empty() ? nullptr : m->dA.data();
  v.B = m->B.data() + row0 * m->rank;
  v.dB = m->dB.empty() ? nullptr : m->dB.data() + row0 * m->rank;
  return v;
}

std::optional<LoraView> LoraAdapter::view(int64_t layer, Proj p, int64_t row0, int64_t rows) const {
  auto v = const_cast<LoraAdapter*>(this)->view(layer, p, row0, rows);
  if (v) v->dA = v->dB = nullptr;
  return v;
}

void check_fused_targets(const ModuleMask& mask, ProjLayout layout, const char* what) {
  if (layout != ProjLayout::Fused) return;
  for (int i = 0; i < kNumProj; ++i) {
    const FusedGroup* g = fused_group(Proj(i));
    if (!g || mask[size_t(i)] == mask[size_t(g->first)]) continue;
    fail(what, ": this model fuses its projections (q, k, v into qkv_proj; gate, up into gate_up_proj), so a "
         "module list takes all of a group or none of it; got ", proj_name(mask[size_t(i)] ? Proj(i) : g->first),
         " without ", proj_name(mask[size_t(i)] ? g->first : Proj(i)));
  }
}

void LoraAdapter::zero_grad() {
  for (auto& layer : layers)
    for (auto& m : layer)
      if (m) {
        std::fill(m->dA.begin(), m->dA.end(), 0.0f);
        std::fill(m->dB.begin(), m->dB.end(), 0.0f);
      }
  molora.zero_grad();
}

int64_t LoraAdapter::parameter_count() const {
  int64_t n = 0;
  for (const auto& layer : layers)
    for (const auto& m : layer)
      if (m) n += int64_t(m->A.size() + m->B.size());
  return n + molora.parameter_count();
}

bool LoraAdapter::has_experts(const ModuleMask& mask) const {
  for (int64_t l = 0; l < int64_t(molora.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (mask[size_t(i)] && molora.find(l, Proj(i))) return true;
  return false;
}

}  // namespace taia
