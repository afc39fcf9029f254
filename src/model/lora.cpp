#include "model/lora.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "tokenizer/regex.h"

namespace taia {

namespace {
const char* kNames[kNumProj] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
}

const char* proj_name(Proj p) { return kNames[int(p)]; }
const char* proj_parent(Proj p) { return proj_is_attention(p) ? "self_attn" : "mlp"; }
bool proj_is_attention(Proj p) { return int(p) <= int(Proj::O); }

std::optional<Proj> proj_from_name(const std::string& name) {
  for (int i = 0; i < kNumProj; ++i) {
    const std::string full = kNames[i];
    if (name == full || name == full.substr(0, full.size() - 5)) return Proj(i);
  }
  return std::nullopt;
}

std::array<bool, kNumProj> parse_targets(const std::string& spec) {
  std::array<bool, kNumProj> t{};
  if (spec == "all" || spec == "all-linear") {
    t.fill(true);
    return t;
  }
  if (spec == "attn" || spec == "attention") {
    for (int i = 0; i < 4; ++i) t[size_t(i)] = true;
    return t;
  }
  if (spec == "ffn" || spec == "mlp") {
    for (int i = 4; i < kNumProj; ++i) t[size_t(i)] = true;
    return t;
  }
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    const auto p = proj_from_name(item);
    TAIA_CHECK(p.has_value(), "[targets] expected all, attn, ffn or a list of q,k,v,o,gate,up,down, got '", item, "'");
    t[size_t(*p)] = true;
    start = comma + 1;
  }
  return t;
}

std::string targets_to_string(const std::array<bool, kNumProj>& t) {
  std::string s;
  for (int i = 0; i < kNumProj; ++i) {
    if (!t[size_t(i)]) continue;
    if (!s.empty()) s += ',';
    s += kNames[i];
  }
  return s;
}

ModuleMask parse_mode(const std::string& m) {
  ModuleMask mask{};
  if (m == "base") return mask;
  if (m == "vanilla") return parse_targets("all");
  if (m == "taia") return parse_targets("attn");
  if (m == "taif") return parse_targets("ffn");
  return parse_targets(m);
}

std::string mode_name(const ModuleMask& mask) {
  if (mask == ModuleMask{}) return "base";
  if (mask == parse_targets("all")) return "vanilla";
  if (mask == parse_targets("attn")) return "taia";
  if (mask == parse_targets("ffn")) return "taif";
  return targets_to_string(mask);
}

std::string module_name(int64_t layer, Proj p) {
  return "model.layers." + std::to_string(layer) + "." + proj_parent(p) + "." + proj_name(p);
}

std::optional<std::pair<int64_t, double>> LoraConfig::module_rank_alpha(int64_t layer, Proj p) const {
  if (!targets[size_t(p)]) return std::nullopt;
  if (!layers_to_transform.empty() &&
      std::find(layers_to_transform.begin(), layers_to_transform.end(), layer) == layers_to_transform.end())
    return std::nullopt;
  const std::string name = module_name(layer, p);
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

double LoraConfig::scale(int64_t r, double a) const { return use_rslora ? a / std::sqrt(double(r)) : a / double(r); }

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

LoraAdapter LoraAdapter::create(const ModelConfig& model, const LoraConfig& config, uint64_t seed) {
  TAIA_CHECK(config.rank > 0 && config.rank <= 65536, "[lora] rank expected 1..65536, got ", config.rank);
  TAIA_CHECK(config.dropout >= 0 && config.dropout < 1, "[lora] dropout expected in [0, 1), got ", config.dropout);
  for (int64_t l : config.layers_to_transform)
    TAIA_CHECK(l >= 0 && l < model.num_layers, "[lora] layers_to_transform entry ", l, " is outside 0..",
               model.num_layers - 1);
  LoraAdapter a;
  a.config = config;
  a.layers.resize(size_t(model.num_layers));
  Rng rng(seed);
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      const auto ra = config.module_rank_alpha(l, p);
      if (!ra) continue;
      TAIA_CHECK(ra->first > 0, "[lora] rank of ", module_name(l, p), " expected > 0, got ", ra->first);
      LoraModule m;
      std::tie(m.in, m.out) = proj_shape(model, p);
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

LoraModule* LoraAdapter::find(int64_t layer, Proj p) {
  if (layer < 0 || layer >= int64_t(layers.size())) return nullptr;
  auto& m = layers[size_t(layer)][size_t(p)];
  return m ? &*m : nullptr;
}

const LoraModule* LoraAdapter::find(int64_t layer, Proj p) const {
  return const_cast<LoraAdapter*>(this)->find(layer, p);
}

void LoraAdapter::zero_grad() {
  for (auto& layer : layers)
    for (auto& m : layer)
      if (m) {
        std::fill(m->dA.begin(), m->dA.end(), 0.0f);
        std::fill(m->dB.begin(), m->dB.end(), 0.0f);
      }
}

int64_t LoraAdapter::parameter_count() const {
  int64_t n = 0;
  for (const auto& layer : layers)
    for (const auto& m : layer)
      if (m) n += int64_t(m->A.size() + m->B.size());
  return n;
}

}  // namespace taia
