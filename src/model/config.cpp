#include "model/config.h"

#include <cmath>

#include "core/error.h"

namespace taia {

void ModelConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* name, int64_t max) {
    TAIA_CHECK(v > 0 && v <= max, origin, ": ", name, " expected 1..", max, ", got ", v);
  };
  positive(vocab_size, "vocab_size", int64_t(1) << 24);
  positive(hidden_size, "hidden_size", int64_t(1) << 17);
  positive(intermediate_size, "intermediate_size", int64_t(1) << 19);
  positive(num_layers, "num_hidden_layers", 4096);
  positive(num_heads, "num_attention_heads", 4096);
  positive(num_kv_heads, "num_key_value_heads", 4096);
  positive(head_dim, "head_dim", 4096);
  positive(max_position_embeddings, "max_position_embeddings", int64_t(1) << 24);
  TAIA_CHECK(num_heads % num_kv_heads == 0, origin, ": num_attention_heads (", num_heads,
             ") expected a multiple of num_key_value_heads (", num_kv_heads, ")");
  TAIA_CHECK(partial_rotary_factor > 0 && partial_rotary_factor <= 1, origin,
             ": partial_rotary_factor expected in (0, 1], got ", partial_rotary_factor);
  TAIA_CHECK(rotary_dims() >= 2 && rotary_dims() % 2 == 0, origin, ": the rotated channels per head (head_dim ",
             head_dim, " x partial_rotary_factor ", partial_rotary_factor, " = ", rotary_dims(),
             ") expected an even number >= 2");
  TAIA_CHECK(rotary_layers.empty() || int64_t(rotary_layers.size()) == num_layers, origin, ": no_rope_layers expected ",
             num_layers, " entries (one per layer), got ", rotary_layers.size());
  TAIA_CHECK(rms_norm_eps > 0 && rms_norm_eps < 1, origin, ": rms_norm_eps expected in (0, 1), got ", rms_norm_eps);
  TAIA_CHECK(rope_theta > 0, origin, ": rope_theta expected > 0, got ", rope_theta);
  TAIA_CHECK(sliding_window >= 0, origin, ": sliding_window expected >= 1 or null, got ", sliding_window);
  if (rope_scaling.type != RopeScaling::Type::None)
    TAIA_CHECK(rope_scaling.factor > 0, origin, ": rope_scaling.factor expected > 0, got ", rope_scaling.factor);
  if (rope_scaling.type == RopeScaling::Type::Llama3)
    TAIA_CHECK(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor &&
                   rope_scaling.original_max_position_embeddings > 0,
               origin, ": rope_scaling (llama3) expected high_freq_factor > low_freq_factor and "
               "original_max_position_embeddings > 0");
  if (rope_scaling.type == RopeScaling::Type::LongRope) {
    for (const auto* f : {&rope_scaling.short_factor, &rope_scaling.long_factor}) {
      TAIA_CHECK(int64_t(f->size()) == rotary_dims() / 2, origin, ": rope_scaling (longrope) expected ",
                 rotary_dims() / 2, " short_factor and long_factor entries (the rotated channels / 2), got ", f->size());
      for (float v : *f)
        TAIA_CHECK(std::isfinite(v) && v > 0, origin, ": rope_scaling (longrope) factors expected > 0, got ", v);
    }
    TAIA_CHECK(rope_scaling.original_max_position_embeddings > 0 && rope_scaling.attention_factor > 0, origin,
               ": rope_scaling (longrope) expected original_max_position_embeddings > 0 and attention_factor > 0");
  }
  for (int64_t id : bos_token_ids)
    TAIA_CHECK(id >= 0 && id < vocab_size, origin, ": bos_token_id ", id, " is outside the vocabulary (", vocab_size, ")");
  for (int64_t id : eos_token_ids)
    TAIA_CHECK(id >= 0 && id < vocab_size, origin, ": eos_token_id ", id, " is outside the vocabulary (", vocab_size, ")");
}

int64_t ModelConfig::parameter_count() const {
  const int64_t D = hidden_size, I = intermediate_size;
  int64_t per_layer = D * q_dim() + 2 * D * kv_dim() + q_dim() * D + 3 * D * I + 2 * D;
  if (qkv_bias) per_layer += q_dim() + 2 * kv_dim();
  if (o_bias) per_layer += D;
  if (mlp_bias) per_layer += 2 * I + D;
  if (qk_norm) per_layer += 2 * head_dim;
  if (sandwich_norms) per_layer += 2 * D;
  int64_t total = vocab_size * D + num_layers * per_layer + D;
  if (!tie_word_embeddings) total += vocab_size * D;
  return total;
}

namespace {

std::vector<int64_t> token_ids(const Json& j, const char* key, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (it->is_number_integer()) return {it->get<int64_t>()};
  TAIA_CHECK(it->is_array(), origin, ": field '", key, "' expected an integer or a list of integers, got ",
             it->dump());
  std::vector<int64_t> ids;
  for (const Json& v : *it) {
    TAIA_CHECK(v.is_number_integer(), origin, ": field '", key, "' expected integers, got ", v.dump());
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

void read_rope_scaling(const Json& rs, ModelConfig& c, const std::string& origin, const char* field) {
  TAIA_CHECK(rs.is_object(), origin, ": '", field, "' expected an object, got ", rs.dump());
  std::string type = json_string_or(rs, "rope_type", "", origin);
  if (type.empty()) type = json_string_or(rs, "type", "default", origin);
  if (rs.contains("rope_theta")) c.rope_theta = json_number_or(rs, "rope_theta", c.rope_theta, origin);
  if (type == "default") {
    c.rope_scaling.type = RopeScaling::Type::None;
    return;
  }
  c.rope_scaling.factor = float(json_number_or(rs, "factor", 1.0, origin));
  if (type == "linear") {
    c.rope_scaling.type = RopeScaling::Type::Linear;
  } else if (type == "llama3") {
    c.rope_scaling.type = RopeScaling::Type::Llama3;
    c.rope_scaling.low_freq_factor = float(json_number_or(rs, "low_freq_factor", 1.0, origin));
    c.rope_scaling.high_freq_factor = float(json_number_or(rs, "high_freq_factor", 4.0, origin));
    c.rope_scaling.original_max_position_embeddings =
        json_int_or(rs, "original_max_position_embeddings", 8192, origin);
  } else if (type == "longrope" || type == "su") {  // "su": Phi-3's first name for it, which HF maps here
    c.rope_scaling.type = RopeScaling::Type::LongRope;
    for (auto [key, dst] : {std::pair{"short_factor", &c.rope_scaling.short_factor},
                            std::pair{"long_factor", &c.rope_scaling.long_factor}}) {
      auto it = rs.find(key);
      TAIA_CHECK(it != rs.end() && it->is_array(), origin, ": ", field, ".", key, " expected a list of numbers");
      dst->clear();
      for (const Json& v : *it) {
        TAIA_CHECK(v.is_number(), origin, ": ", field, ".", key, " expected numbers, got ", v.dump());
        dst->push_back(v.get<float>());
      }
    }
    c.rope_scaling.original_max_position_embeddings = json_int_or(rs, "original_max_position_embeddings", 0, origin);
    c.rope_scaling.attention_factor = float(json_number_or(rs, "attention_factor", 0.0, origin));
  } else {
    fail(origin, ": ", field, ".rope_type expected one of default, linear, llama3, longrope, got '", type, "'");
  }
}

// LongRope's limits, as HF's _compute_longrope_parameters decides them: with a top-level
// original_max_position_embeddings (Phi-3), factor = max_position_embeddings / it; without, the
// original is max_position_embeddings and factor the rope_scaling's. attention_factor, unless
// given: sqrt(1 + ln(factor) / ln(original)) for factor > 1, else 1.
void finish_longrope(const Json& j, ModelConfig& c, const std::string& origin) {
  RopeScaling& rs = c.rope_scaling;
  if (rs.type != RopeScaling::Type::LongRope) return;
  double factor = rs.factor;
  if (j.contains("original_max_position_embeddings")) {
    rs.original_max_position_embeddings = json_int(j, "original_max_position_embeddings", origin);
    TAIA_CHECK(rs.original_max_position_embeddings > 0, origin, ": original_max_position_embeddings expected > 0");
    factor = double(c.max_position_embeddings) / double(rs.original_max_position_embeddings);
  } else if (rs.original_max_position_embeddings == 0) {
    rs.original_max_position_embeddings = c.max_position_embeddings;
  }
  if (rs.attention_factor == 0) rs.attention_factor = longrope_attention_factor(factor, rs.original_max_position_embeddings);
}

// Phi-3: training-time dropouts are not implemented: refused unless they are off.
void read_phi3(const Json& j, const std::string& origin) {
  for (const char* key : {"resid_pdrop", "embd_pdrop", "attention_dropout"}) {
    const double p = json_number_or(j, key, 0.0, origin);
    TAIA_CHECK(p == 0.0, origin, ": ", key, " ", p, " is not supported (taia trains without this dropout: 0.0)");
  }
}

// A positive number under `key`: `absent` when the key is missing (HF's config-class default),
// 0 when it is null (the feature off).
double positive_or(const Json& j, const char* key, double absent, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end()) return absent;
  if (it->is_null()) return 0;
  TAIA_CHECK(it->is_number() && it->get<double>() > 0, origin, ": ", key, " expected a positive number or null, got ",
             it->dump());
  return it->get<double>();
}

// transformers v5 writes Gemma 3's RoPE per layer type: {"full_attention": {...}, "sliding_attention":
// {...}}. The full-attention entry is the global RoPE (base and scaling); the sliding one may only
// set a base.
bool read_per_layer_rope(const Json& rp, ModelConfig& c, const std::string& origin) {
  if (!rp.is_object() || !(rp.contains("full_attention") || rp.contains("sliding_attention"))) return false;
  TAIA_CHECK(c.arch == Arch::Gemma3, origin, ": rope_parameters per layer type is only read for Gemma 3");
  if (rp.contains("full_attention")) read_rope_scaling(rp["full_attention"], c, origin, "rope_parameters.full_attention");
  if (rp.contains("sliding_attention")) {
    const Json& s = rp["sliding_attention"];
    ModelConfig local;
    read_rope_scaling(s, local, origin, "rope_parameters.sliding_attention");
    TAIA_CHECK(local.rope_scaling.type == RopeScaling::Type::None, origin,
               ": rope_parameters.sliding_attention expected rope_type default (the local layers are not scaled)");
    c.rope_local_theta = json_number_or(s, "rope_theta", 10000.0, origin);
  }
  return true;
}

// Gemma 2 and 3 beyond their profile: soft-capping (2), query_pre_attn_scalar, Gemma 3's local
// RoPE base. Missing keys take the HF config classes' defaults.
void read_gemma(const Json& j, ModelConfig& c, const std::string& origin) {
  TAIA_CHECK(!json_bool_or(j, "use_bidirectional_attention", false, origin), origin,
             ": use_bidirectional_attention=true (an embedding model) is not supported: taia's attention is causal");
  const bool gemma2 = c.arch == Arch::Gemma2;
  c.attn_softcap = positive_or(j, "attn_logit_softcapping", gemma2 ? 50.0 : 0.0, origin);
  c.final_softcap = positive_or(j, "final_logit_softcapping", gemma2 ? 30.0 : 0.0, origin);
  c.query_pre_attn_scalar = positive_or(j, "query_pre_attn_scalar", 256.0, origin);
  if (!gemma2) {
    if (c.rope_local_theta == 0) c.rope_local_theta = json_number_or(j, "rope_local_base_freq", 10000.0, origin);
    TAIA_CHECK(c.rope_local_theta > 0, origin, ": rope_local_base_freq expected > 0, got ", c.rope_local_theta);
  }
}

// HF's `layer_types`: 1 where a layer is windowed ("sliding_attention"), 0 where it is global.
std::vector<uint8_t> read_layer_types(const Json& lt, int64_t layers, const std::string& origin) {
  TAIA_CHECK(lt.is_array() && int64_t(lt.size()) == layers, origin, ": layer_types expected ", layers,
             " entries (one per layer), got ", lt.is_array() ? std::to_string(lt.size()) : lt.dump());
  std::vector<uint8_t> local;
  for (int64_t l = 0; l < layers; ++l) {
    const Json& kind = lt[size_t(l)];
    TAIA_CHECK(kind == "sliding_attention" || kind == "full_attention", origin, ": layer_types[", l,
               "] expected 'sliding_attention' or 'full_attention', got ", kind.dump());
    local.push_back(kind == "sliding_attention" ? 1 : 0);
  }
  return local;
}

// A window size under `sliding_window`: a positive integer, or null / absent (0: none).
int64_t window_or_none(const Json& j, const std::string& origin) {
  auto sw = j.find("sliding_window");
  if (sw == j.end() || sw->is_null()) return 0;
  TAIA_CHECK(sw->is_number_integer() && sw->get<int64_t>() > 0, origin,
             ": sliding_window expected a positive integer or null, got ", sw->dump());
  return sw->get<int64_t>();
}

// Each layer's attention window, by the profile's rule.
void read_window(const Json& j, const ArchProfile& a, ModelConfig& c, const std::string& origin) {
  const auto layer_types = j.find("layer_types");
  const bool has_layer_types = layer_types != j.end() && !layer_types->is_null();
  switch (a.window) {
    case WindowRule::None:
      TAIA_CHECK(!json_bool_or(j, "use_sliding_window", false, origin), origin,
                 ": use_sliding_window=true is not supported for ", a.hf_class, " (taia attends over the full context)");
      return;
    case WindowRule::EveryLayer:
      c.sliding_window = window_or_none(j, origin);
      return;
    case WindowRule::GemmaPattern: {
      const bool gemma2 = a.arch == Arch::Gemma2;
      c.sliding_window = int64_t(positive_or(j, "sliding_window", gemma2 ? 4096.0 : 512.0, origin));
      c.sliding_window_pattern = gemma2 ? 2 : json_int_or(j, "sliding_window_pattern", 6, origin);
      TAIA_CHECK(c.sliding_window_pattern >= 1, origin, ": sliding_window_pattern expected >= 1, got ",
                 c.sliding_window_pattern);
      // Each layer's kind as written (HF derives layer_types from the pattern only when absent).
      if (has_layer_types) c.local_layers = read_layer_types(*layer_types, c.num_layers, origin);
      return;
    }
    case WindowRule::LayerTypesKey:
      // SmolLM3: windows only with use_sliding_window and a size; then on the layers layer_types
      // marks, by default the NoPE ones (HF's SmolLM3Config).
      c.sliding_window = json_bool_or(j, "use_sliding_window", false, origin) ? window_or_none(j, origin) : 0;
      if (c.sliding_window == 0) return;
      if (has_layer_types) {
        c.local_layers = read_layer_types(*layer_types, c.num_layers, origin);
      } else {
        for (int64_t l = 0; l < c.num_layers; ++l) c.local_layers.push_back(c.layer_rotates(l) ? 0 : 1);
      }
      return;
  }
}

// Which projections have biases, by the profile's rule and the config's keys.
void read_biases(const Json& j, const ArchProfile& a, ModelConfig& c, const std::string& origin) {
  const bool attention_bias = json_bool_or(j, "attention_bias", false, origin);
  switch (a.biases) {
    case BiasRule::AttentionAndMlpKeys:
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = json_bool_or(j, "mlp_bias", false, origin);
      return;
    case BiasRule::QkvAlways:
      c.qkv_bias = true;
      return;
    case BiasRule::AttentionKey:
      c.qkv_bias = c.o_bias = attention_bias;
      return;
    case BiasRule::None:
      TAIA_CHECK(!attention_bias, origin, ": attention_bias=true is not supported for ", a.hf_class,
                 " (its projections have no biases)");
      return;
  }
}

// The rotary beyond theta and scaling: a partial rotary (Phi-4-mini) and NoPE layers (SmolLM3),
// each read only where the family has it and refused by name elsewhere.
void read_rotary_layout(const Json& j, const ArchProfile& a, ModelConfig& c, const std::string& origin) {
  const double prf = json_number_or(j, "partial_rotary_factor", 1.0, origin);
  TAIA_CHECK(a.reads_partial_rotary || prf == 1.0, origin, ": partial_rotary_factor ", prf, " is not supported for ",
             a.hf_class, " (taia rotates whole heads there: 1.0)");
  c.partial_rotary_factor = prf;
  if (!a.reads_no_rope_layers) {
    TAIA_CHECK(!j.contains("no_rope_layers"), origin, ": no_rope_layers is not supported for ", a.hf_class);
    return;
  }
  auto nr = j.find("no_rope_layers");
  if (nr == j.end() || nr->is_null()) {  // HF: a NoPE layer every no_rope_layer_interval layers
    const int64_t every = json_int_or(j, "no_rope_layer_interval", 4, origin);
    TAIA_CHECK(every >= 1, origin, ": no_rope_layer_interval expected >= 1, got ", every);
    for (int64_t l = 0; l < c.num_layers; ++l) c.rotary_layers.push_back((l + 1) % every != 0 ? 1 : 0);
    return;
  }
  // "At least the same length as the number of layers" (HF): the first num_layers entries count.
  TAIA_CHECK(nr->is_array() && int64_t(nr->size()) >= c.num_layers, origin, ": no_rope_layers expected at least ",
             c.num_layers, " entries of 0 or 1, got ", nr->dump());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Json& v = (*nr)[size_t(l)];
    TAIA_CHECK(v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1), origin, ": no_rope_layers[",
               l, "] expected 0 (no rotary) or 1, got ", v.dump());
    c.rotary_layers.push_back(uint8_t(v.get<int64_t>()));
  }
}

// The MLP's activation as the config names it; the profile's is the only one implemented.
void check_activation(const Json& j, const ArchProfile& a, const std::string& origin) {
  const char* want = activation_name(a.activation);
  const std::string act = json_string_or(j, "hidden_activation", json_string_or(j, "hidden_act", want, origin), origin);
  TAIA_CHECK(act == want, origin, ": hidden_act expected '", want, "' for ", a.hf_class, ", got '", act, "'");
}

}  // namespace

float longrope_attention_factor(double factor, int64_t original_max_position_embeddings) {
  if (factor <= 1.0) return 1.0f;
  return float(std::sqrt(1.0 + std::log(factor) / std::log(double(original_max_position_embeddings))));
}

void apply_arch_layer(ModelConfig& c) {
  const ArchProfile& a = arch_profile(c.arch);
  c.activation = a.activation;
  c.norm_plus_one = a.norm_plus_one;
  c.scale_embeddings = a.scale_embeddings;
  c.sandwich_norms = a.norms == NormLayout::Sandwich;
  c.qk_norm = a.qk_norm;
  c.fused_proj = a.projections == ProjLayout::Fused;
}

AttentionShape ModelConfig::attention_shape(int64_t layer) const {
  AttentionShape shape{num_heads, num_kv_heads, head_dim, layer_window(layer)};
  if (query_pre_attn_scalar > 0) shape.scale = attention_scale();
  shape.softcap = float(attn_softcap);
  return shape;
}

float ModelConfig::embedding_scale() const { return scale_embeddings ? float(std::sqrt(double(hidden_size))) : 1.0f; }

float ModelConfig::attention_scale() const {
  // In double, rounded once, as HF's Python float scaling multiplies the float32 logits.
  return float(1.0 / std::sqrt(query_pre_attn_scalar > 0 ? query_pre_attn_scalar : double(head_dim)));
}

namespace {

const ArchProfile& read_arch(const Json& j, const std::string& origin) {
  const std::string model_type = json_string_or(j, "model_type", "", origin);
  std::string klass;
  if (auto a = j.find("architectures"); a != j.end() && a->is_array() && !a->empty() && (*a)[0].is_string())
    klass = (*a)[0].get<std::string>();
  const ArchProfile* found = find_arch(model_type, klass);
  TAIA_CHECK(found, origin, ": model_type expected one of ", arch_model_types(), " (", arch_hf_classes(), "), got '",
             model_type.empty() ? klass : model_type, "'");
  return *found;
}

void read_sizes(const Json& j, const ArchProfile& a, ModelConfig& c, const std::string& origin) {
  c.vocab_size = json_int(j, "vocab_size", origin);
  c.hidden_size = json_int(j, "hidden_size", origin);
  c.intermediate_size = json_int(j, "intermediate_size", origin);
  c.num_layers = json_int(j, "num_hidden_layers", origin);
  c.num_heads = json_int(j, "num_attention_heads", origin);
  c.num_kv_heads = json_int_or(j, "num_key_value_heads", c.num_heads, origin);
  TAIA_CHECK(c.num_heads > 0, origin, ": num_attention_heads expected > 0, got ", c.num_heads);
  TAIA_CHECK(c.num_layers > 0 && c.num_layers <= 4096, origin, ": num_hidden_layers expected 1..4096, got ",
             c.num_layers);
  c.head_dim = json_int_or(j, "head_dim", a.default_head_dim > 0 ? a.default_head_dim : c.hidden_size / c.num_heads,
                           origin);
  c.rms_norm_eps = json_number_or(j, "rms_norm_eps", 1e-6, origin);
  c.max_position_embeddings = json_int_or(j, "max_position_embeddings", 2048, origin);
  c.tie_word_embeddings = json_bool_or(j, "tie_word_embeddings", a.default_tied, origin);
}

void read_rope(const Json& j, const ArchProfile& a, ModelConfig& c, const std::string& origin) {
  c.rope_theta = json_number_or(j, "rope_theta", a.default_rope_theta, origin);
  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null()) read_rope_scaling(*rs, c, origin, "rope_scaling");
  if (auto rp = j.find("rope_parameters"); rp != j.end() && !rp->is_null() && !read_per_layer_rope(*rp, c, origin))
    read_rope_scaling(*rp, c, origin, "rope_parameters");
  read_rotary_layout(j, a, c, origin);
}

}  // namespace

// A config.json through its architecture's profile (model/arch.h): the layer the profile builds,
// the sizes, the rotary, the biases and the windows by its rules, then what one family alone has.
ModelConfig config_from_hf_json(const Json& j, const std::string& origin) {
  TAIA_CHECK(j.is_object(), origin, ": expected a JSON object");
  const ArchProfile& a = read_arch(j, origin);
  ModelConfig c;
  c.arch = a.arch;
  apply_arch_layer(c);
  read_sizes(j, a, c, origin);
  read_rope(j, a, c, origin);
  read_biases(j, a, c, origin);
  read_window(j, a, c, origin);
  check_activation(j, a, origin);
  if (a.arch == Arch::Gemma2 || a.arch == Arch::Gemma3) read_gemma(j, c, origin);
  if (a.arch == Arch::Phi3) read_phi3(j, origin);
  finish_longrope(j, c, origin);
  c.bos_token_ids = token_ids(j, "bos_token_id", origin);
  c.eos_token_ids = token_ids(j, "eos_token_id", origin);
  c.torch_dtype = json_string_or(j, "torch_dtype", json_string_or(j, "dtype", "float32", origin), origin);
  c.validate(origin);
  return c;
}

namespace {

// The keys of the profile's rules (biases, windows, rotary layout) and of one family alone.
void write_layer_keys(Json& j, const ArchProfile& a, const ModelConfig& c) {
  if (a.biases == BiasRule::AttentionAndMlpKeys) j["mlp_bias"] = c.mlp_bias;
  if (a.biases == BiasRule::AttentionAndMlpKeys || a.biases == BiasRule::AttentionKey) j["attention_bias"] = c.qkv_bias;
  // Every layer's kind, explicit (what decides when a config gave it; HF reads it first).
  auto layer_types = [&] {
    Json kinds = Json::array();
    for (int64_t l = 0; l < c.num_layers; ++l) kinds.push_back(c.layer_is_local(l) ? "sliding_attention" : "full_attention");
    return kinds;
  };
  if (a.window == WindowRule::EveryLayer || a.window == WindowRule::GemmaPattern)
    j["sliding_window"] = c.sliding_window > 0 ? Json(c.sliding_window) : Json(nullptr);
  if (a.window == WindowRule::GemmaPattern) j["layer_types"] = layer_types();
  if (a.window == WindowRule::LayerTypesKey) {
    j["use_sliding_window"] = c.sliding_window > 0;
    j["sliding_window"] = c.sliding_window > 0 ? Json(c.sliding_window) : Json(nullptr);
    if (c.sliding_window > 0) j["layer_types"] = layer_types();
  }
  if (a.reads_partial_rotary && c.partial_rotary_factor != 1.0) j["partial_rotary_factor"] = c.partial_rotary_factor;
  if (a.reads_no_rope_layers) {
    Json rotates = Json::array();
    for (int64_t l = 0; l < c.num_layers; ++l) rotates.push_back(c.layer_rotates(l) ? 1 : 0);
    j["no_rope_layers"] = rotates;
  }
  if (a.arch == Arch::Gemma2 || a.arch == Arch::Gemma3) {
    j["hidden_activation"] = activation_name(c.activation);
    j["query_pre_attn_scalar"] = c.query_pre_attn_scalar > 0 ? Json(c.query_pre_attn_scalar) : Json(nullptr);
    j["attn_logit_softcapping"] = c.attn_softcap > 0 ? Json(c.attn_softcap) : Json(nullptr);
    j["final_logit_softcapping"] = c.final_softcap > 0 ? Json(c.final_softcap) : Json(nullptr);
  }
  if (a.arch == Arch::Gemma3) {
    j["sliding_window_pattern"] = c.sliding_window_pattern;
    j["rope_local_base_freq"] = c.rope_local_theta;
  }
}

}  // namespace

Json config_to_hf_json(const ModelConfig& c) {
  Json j;
  j["architectures"] = {arch_hf_class(c.arch)};
  j["model_type"] = arch_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = activation_name(c.activation);
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  write_layer_keys(j, arch_profile(c.arch), c);
  if (c.rope_scaling.type == RopeScaling::Type::Linear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
  } else if (c.rope_scaling.type == RopeScaling::Type::Llama3) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  } else if (c.rope_scaling.type == RopeScaling::Type::LongRope) {
    // The three fields Phi3Config accepts; attention_factor only when it is not the one the
    // limits give (a reload then computes the same float).
    const RopeScaling& rs = c.rope_scaling;
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", rs.short_factor}, {"long_factor", rs.long_factor}};
    j["original_max_position_embeddings"] = rs.original_max_position_embeddings;
    const double factor = double(c.max_position_embeddings) / double(rs.original_max_position_embeddings);
    if (rs.attention_factor != longrope_attention_factor(factor, rs.original_max_position_embeddings))
      j["rope_scaling"]["attention_factor"] = double(rs.attention_factor);
  }
  auto ids = [](const std::vector<int64_t>& v) -> Json {
    if (v.empty()) return nullptr;
    if (v.size() == 1) return v[0];
    return v;
  };
  j["bos_token_id"] = ids(c.bos_token_ids);
  j["eos_token_id"] = ids(c.eos_token_ids);
  return j;
}

void check_ids_in_vocab(const std::vector<int32_t>& ids, const ModelConfig& c, const std::string& model_path) {
  for (size_t i = 0; i < ids.size(); ++i)
    TAIA_CHECK(ids[i] >= 0 && ids[i] < c.vocab_size, "token id ", ids[i], " at index ", i,
               " is outside the vocabulary of ", model_path, " (", c.vocab_size, " tokens)");
}

}  // namespace taia
