#include "model/inspect.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/molora.h"
#include "model/peft_adapter.h"
#include "model/lora.h"
#include "model/weights.h"
#include "io/gguf_keys.h"

namespace taia {
namespace {

// The hyper-parameters under HF's own config.json names, plus the architecture and the
// derived facts config.json leaves implicit.
Json config_json(const ModelConfig& c) {
  Json j = config_to_hf_json(c);
  j["architecture"] = arch_name(c.arch);
  j["head_dim"] = c.head_dim;
  j["qkv_bias"] = c.qkv_bias;
  // Every architecture feature taia found, by name (what changes the layer's math).
  Json features = Json::array();
  if (c.qkv_bias) features.push_back("qkv_bias");
  if (c.o_bias) features.push_back("o_bias");
  if (c.mlp_bias) features.push_back("mlp_bias");
  if (c.qk_norm) features.push_back("qk_norm");
  if (c.sliding_window > 0) features.push_back("sliding_window=" + std::to_string(c.sliding_window));
  if (c.head_dim * c.num_heads != c.hidden_size) features.push_back("head_dim=" + std::to_string(c.head_dim));
  if (c.num_kv_heads != c.num_heads) features.push_back("gqa=" + std::to_string(c.num_heads / c.num_kv_heads));
  if (c.tie_word_embeddings) features.push_back("tied_embeddings");
  if (c.activation == Activation::GeluTanh) features.push_back("geglu");
  if (c.norm_plus_one) features.push_back("norm_plus_one");
  if (c.scale_embeddings) features.push_back("scaled_embeddings");
  if (c.sandwich_norms) features.push_back("sandwich_norms");
  if (c.sliding_window_pattern >= 1 && c.sliding_window > 0)
    features.push_back("global_every=" + std::to_string(c.sliding_window_pattern));
  if (c.attn_softcap > 0) features.push_back("attn_softcap=" + Json(c.attn_softcap).dump());
  if (c.final_softcap > 0) features.push_back("final_softcap=" + Json(c.final_softcap).dump());
  if (c.query_pre_attn_scalar > 0)
    features.push_back("query_pre_attn_scalar=" + Json(c.query_pre_attn_scalar).dump());
  if (c.rope_local_theta > 0) features.push_back("rope_local_theta=" + Json(c.rope_local_theta).dump());
  if (c.fused_proj) features.push_back("fused_projections=qkv_proj,gate_up_proj");
  if (c.rotary_dims() != c.head_dim) features.push_back("partial_rotary=" + std::to_string(c.rotary_dims()));
  if (!c.rotary_layers.empty()) {
    std::string nope;
    for (int64_t l = 0; l < c.num_layers; ++l)
      if (!c.layer_rotates(l)) nope += (nope.empty() ? "" : ",") + std::to_string(l);
    if (!nope.empty()) features.push_back("nope_layers=" + nope);
  }
  if (c.rope_scaling.type == RopeScaling::Type::Linear) features.push_back("rope_scaling=linear");
  if (c.rope_scaling.type == RopeScaling::Type::Llama3) features.push_back("rope_scaling=llama3");
  if (c.rope_scaling.type == RopeScaling::Type::LongRope)
    features.push_back("rope_scaling=longrope(original=" + std::to_string(c.rope_scaling.original_max_position_embeddings) +
                       ", attention_factor=" + Json(c.rope_scaling.attention_factor).dump() + ")");
  j["features"] = features;
  return j;
}

// Name -> shape, dtype counts and parameter count of the tensors a file holds.
struct TensorSummary {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, int64_t> dtypes;
  int64_t parameters = 0;

  void add(const std::string& name, const std::vector<int64_t>& shape, const std::string& dtype) {
    shapes[name] = shape;
    dtypes[dtype] += 1;
    parameters += checked_numel(shape, name);
  }
  void write(Json& r) const {
    r["tensor_count"] = shapes.size();
    r["parameter_count"] = parameters;
    r["dtypes"] = dtypes;
  }
};

std::string shape_str(const std::vector<int64_t>& s) { return TensorView("", DType::F32, s, nullptr).shape_string(); }

// Compares present tensors (name -> shape) with what the config needs.
void check_expected(const ModelConfig& c, const std::map<std::string, std::vector<int64_t>>& present,
                    const std::function<std::string(const std::string&)>& rename, Json& problems) {
  std::set<std::string> used;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    const std::string name = rename(e.name);
    auto it = present.find(name);
    if (it == present.end()) {
      problems.push_back("missing tensor '" + name + "'");
      continue;
    }
    used.insert(name);
    if (it->second != e.shape)
      problems.push_back("tensor '" + name + "' expected shape " + shape_str(e.shape) + ", got " +
                         shape_str(it->second));
  }
  for (const auto& [name, shape] : present)
    if (!used.count(name) && name != kGgufRopeFreqsTensor) problems.push_back("unexpected tensor '" + name + "'");
}

Json inspect_hf(const std::string& dir) {
  Json r;
  r["format"] = "hf";
  Json problems = Json::array();
  ModelConfig c;
  bool have_config = false;
  const std::string config_path = dir + "/config.json";
  if (file_exists(config_path)) {
    try {
      c = config_from_hf_json(parse_json_file(config_path), config_path);
      have_config = true;
      r["config"] = config_json(c);
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  } else {
    problems.push_back("missing config.json");
  }
  SafetensorsCollection st(dir);
  TensorSummary summary;
  for (const SafetensorsTensor* t : st.all()) summary.add(t->name, t->shape, dtype_name(t->dtype));
  r["files"] = Json::array();
  for (const auto& f : st.files()) r["files"].push_back(f->path());
  summary.write(r);
  if (have_config) check_expected(c, summary.shapes, [](const std::string& n) { return n; }, problems);
  r["problems"] = problems;
  return r;
}

Json inspect_gguf(const std::string& path) {
  GgufFile g(path);
  Json r;
  r["format"] = "gguf";
  r["gguf_version"] = g.version();
  Json problems = Json::array();
  Json meta = Json::object();
  for (const auto& [k, v] : g.metadata())
    if (k.rfind(kGgufTokenizerPrefix, 0) != 0 || v.type != GgufType::ARRAY) meta[k] = v.to_string();
    else meta[k] = str_cat("[", v.arr.size(), " items]");
  r["metadata"] = meta;
  TensorSummary summary;
  std::map<std::string, int64_t> type_bytes;  // bytes of tensor data per ggml type
  for (const GgufTensor& t : g.tensors()) {
    summary.add(t.name, t.shape(), ggml_type_name(t.type));
    type_bytes[ggml_type_name(t.type)] += int64_t(t.nbytes);
    if (!gguf_type_supported(t.type))
      problems.push_back(str_cat("tensor '", t.name, "' has type ", ggml_type_name(t.type), " (taia loads ",
                                 gguf_supported_types(), ")"));
  }
  summary.write(r);
  r["bytes_per_type"] = type_bytes;
  try {
    ModelConfig c = config_from_gguf(g);
    r["config"] = config_json(c);
    check_expected(c, summary.shapes, [&](const std::string& n) { return gguf_tensor_name(n, c.norm_layout()); }, problems);
  } catch (const Error& e) {
    problems.push_back(e.what());
  }
  r["problems"] = problems;
  return r;
}

Json inspect_safetensors_file(const std::string& path) {
  SafetensorsFile f(path);
  Json r;
  r["format"] = "safetensors";
  TensorSummary summary;
  for (const auto& t : f.tensors()) summary.add(t.name, t.shape, dtype_name(t.dtype));
  summary.write(r);
  r["metadata"] = f.metadata();
  r["problems"] = Json::array();
  return r;
}

// ||scale * B A||_F for A [r, in], B [out, r]: sum_ij (B^T B)_ij (A A^T)_ij, two r x r products
// instead of an out x in one.
double lora_update_norm(const float* A, const float* B, int64_t rank, int64_t in, int64_t out, double scale) {
  double sq = 0;
  for (int64_t i = 0; i < rank; ++i)
    for (int64_t j = 0; j < rank; ++j) {
      double btb = 0, aat = 0;
      for (int64_t o = 0; o < out; ++o) btb += double(B[o * rank + i]) * B[o * rank + j];
      for (int64_t k = 0; k < in; ++k) aat += double(A[i * in + k]) * A[j * in + k];
      sq += btb * aat;
    }
  return scale * std::sqrt(std::max(0.0, sq));
}

// The MoLoRA part of an adapter folder (molora_config.json, molora_model.safetensors): per
// module its experts' update norms ||scale B_e A_e|| and its router; each layer's FFN norm in
// per_layer gains the experts' (as if every expert applied: an upper bound on any token's update).
Json inspect_experts(const std::string& dir, std::map<int64_t, std::pair<double, double>>& per_layer, Json& problems) {
  const std::string cfg_path = dir + "/" + kMoloraConfigFile;
  const Json cfg = parse_json_file(cfg_path);
  const int64_t rank = json_int(cfg, "r", cfg_path), experts = json_int(cfg, "num_experts", cfg_path);
  const double alpha = json_number_or(cfg, "lora_alpha", double(rank), cfg_path);
  const double scale = lora_scale(rank, alpha, json_bool_or(cfg, "use_rslora", false, cfg_path));
  SafetensorsFile st(dir + "/" + kMoloraWeightsFile);
  Json modules = Json::array();
  const std::string router_suffix = ".router.weight";
  for (const SafetensorsTensor& t : st.tensors()) {
    if (t.name.size() < router_suffix.size() ||
        t.name.compare(t.name.size() - router_suffix.size(), router_suffix.size(), router_suffix) != 0)
      continue;
    const std::string stem = t.name.substr(0, t.name.size() - router_suffix.size());
    const size_t lp = stem.find("layers.");
    if (lp == std::string::npos || t.shape.size() != 2 || t.shape[0] != experts) {
      problems.push_back("router '" + t.name + "' expected shape [" + std::to_string(experts) + ", in] in a layer");
      continue;
    }
    const int64_t layer = std::stoll(stem.substr(lp + 7)), in = t.shape[1];
    std::vector<float> router(size_t(experts * in));
    convert_to_f32(t.dtype, t.data, router.data(), router.size());
    double router_sq = 0;
    for (float v : router) router_sq += double(v) * v;
    Json norms = Json::array();
    for (int64_t e = 0; e < experts; ++e) {
      const std::string ex = stem + ".experts." + std::to_string(e);
      const SafetensorsTensor* a = st.find(ex + ".lora_A.weight");
      const SafetensorsTensor* b = st.find(ex + ".lora_B.weight");
      if (!a || !b || a->shape != std::vector<int64_t>{rank, in} || b->shape.size() != 2 || b->shape[1] != rank) {
        problems.push_back("expert '" + ex + "' expected lora_A [" + std::to_string(rank) + ", " + std::to_string(in) +
                           "] and lora_B [out, " + std::to_string(rank) + "]");
        continue;
      }
      std::vector<float> A(size_t(rank * in)), B(size_t(b->shape[0] * rank));
      convert_to_f32(a->dtype, a->data, A.data(), A.size());
      convert_to_f32(b->dtype, b->data, B.data(), B.size());
      const double norm = lora_update_norm(A.data(), B.data(), rank, in, b->shape[0], scale);
      norms.push_back(norm);
      per_layer[layer].second += norm * norm;
    }
    modules.push_back({{"module", stem.substr(std::string(kPeftKeyPrefix).size())}, {"layer", layer},
                       {"expert_update_norms", norms}, {"router_weight_norm", std::sqrt(router_sq)}});
  }
  return {{"config", cfg}, {"modules", modules}};
}

// A PEFT adapter folder, without its base model: modules, ranks, alphas, scales and the
// Frobenius norm of every module's update ||scale * B A||, summed per layer for attention and FFN.
Json inspect_adapter(const std::string& dir) {
  Json r;
  r["format"] = "peft-adapter";
  const LoraConfig c = read_peft_config(dir);  // validates; the raw JSON is shown as it is
  const Json cfg = parse_json_file(dir + "/adapter_config.json");
  r["adapter_config"] = cfg;
  SafetensorsFile st(dir + "/adapter_model.safetensors");
  Json modules = Json::array();
  std::map<int64_t, std::pair<double, double>> per_layer;  // squared norms: attention, FFN
  Json problems = Json::array();
  for (const SafetensorsTensor& t : st.tensors()) {
    const std::string suffix = ".lora_A.weight";
    if (t.name.size() < suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string stem = t.name.substr(0, t.name.size() - suffix.size());  // base_model.model.model.layers.N.x.y_proj
    const size_t lp = stem.find("layers.");
    const size_t dot = stem.rfind('.');
    const auto projs = dot == std::string::npos ? std::vector<Proj>{} : projs_from_name(stem.substr(dot + 1));
    const std::optional<Proj> proj = projs.empty() ? std::nullopt : std::optional<Proj>(projs[0]);  // fused: the group's first
    if (lp == std::string::npos || !proj) {
      problems.push_back("tensor '" + t.name + "' is not a LoRA matrix of one of the seven projections (or of Phi-3's "
                         "fused qkv_proj / gate_up_proj)");
      continue;
    }
    const int64_t layer = std::stoll(stem.substr(lp + 7));
    const SafetensorsTensor* b = st.find(stem + ".lora_B.weight");
    if (!b || t.shape.size() != 2 || b->shape.size() != 2 || b->shape[1] != t.shape[0]) {
      problems.push_back("module '" + stem + "' has no matching lora_B of shape [out, " + std::to_string(t.shape[0]) + "]");
      continue;
    }
    const int64_t rank = t.shape[0], in = t.shape[1], out = b->shape[0];
    int64_t want_rank = c.rank;
    for (const auto& [key, value] : c.rank_pattern)
      if (stem.size() >= key.size() && stem.compare(stem.size() - key.size(), key.size(), key) == 0) {
        want_rank = value;
        break;
      }
    if (rank != want_rank)
      problems.push_back("module '" + stem + "' has rank " + std::to_string(rank) + " but adapter_config.json says " +
                         std::to_string(want_rank));
    double alpha = c.alpha;
    for (const auto& [key, value] : c.alpha_pattern)
      if (stem.size() >= key.size() && stem.compare(stem.size() - key.size(), key.size(), key) == 0) {
        alpha = value;
        break;
      }
    const double scale = c.scale(rank, alpha);
    std::vector<float> A(size_t(rank * in)), B(size_t(out * rank));
    convert_to_f32(t.dtype, t.data, A.data(), A.size());
    convert_to_f32(b->dtype, b->data, B.data(), B.size());
    const double norm = lora_update_norm(A.data(), B.data(), rank, in, out, scale);
    modules.push_back({{"module", stem.substr(std::string(kPeftKeyPrefix).size())}, {"layer", layer},
                       {"rank", rank}, {"alpha", alpha}, {"scale", scale}, {"update_norm", norm}});
    auto& acc = per_layer[layer];
    (proj_is_attention(*proj) ? acc.first : acc.second) += norm * norm;
  }
  if (file_exists(dir + "/" + kMoloraConfigFile)) r["molora"] = inspect_experts(dir, per_layer, problems);
  Json layers = Json::array();
  for (const auto& [l, sq] : per_layer)
    layers.push_back({{"layer", l}, {"attention_update_norm", std::sqrt(sq.first)}, {"ffn_update_norm", std::sqrt(sq.second)}});
  r["modules"] = modules;
  r["layers"] = layers;
  TensorSummary summary;
  for (const auto& t : st.tensors()) summary.add(t.name, t.shape, dtype_name(t.dtype));
  if (r.contains("molora")) {
    const SafetensorsFile experts(dir + "/" + kMoloraWeightsFile);
    for (const auto& t : experts.tensors()) summary.add(t.name, t.shape, dtype_name(t.dtype));
  }
  summary.write(r);
  r["problems"] = problems;
  return r;
}

}  // namespace

Json inspect_expert_routing(const Model& model, const LoraAdapter& adapter, const ModuleMask& mask,
                            const std::vector<std::vector<int32_t>>& sequences) {
  Decoder decoder(model);
  decoder.set_adapter(&adapter, mask);
  Decoder::ExpertSlotCounts counts;
  decoder.count_expert_slots(&counts);
  std::vector<float> logits(size_t(model.config.vocab_size));
  int64_t tokens = 0;
  for (const std::vector<int32_t>& ids : sequences) {
    if (ids.empty()) continue;
    KVCache cache(model.config, int64_t(ids.size()));
    decoder.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), false);
    tokens += int64_t(ids.size());
  }
  auto shares = [](const std::vector<int64_t>& c) {
    int64_t total = 0;
    for (int64_t v : c) total += v;
    Json s = Json::array();
    for (int64_t v : c) s.push_back(total ? double(v) / double(total) : 0.0);
    return s;
  };
  Json modules = Json::array();
  std::vector<int64_t> all;
  for (size_t l = 0; l < counts.size(); ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const std::vector<int64_t>& c = counts[l][size_t(i)];
      if (c.empty()) continue;
      all.resize(std::max(all.size(), c.size()), 0);
      for (size_t e = 0; e < c.size(); ++e) all[e] += c[e];
      modules.push_back({{"module", module_name(int64_t(l), Proj(i))}, {"slots", c}, {"expert_share", shares(c)}});
    }
  return {{"tokens", tokens}, {"sequences", int64_t(sequences.size())}, {"mode", mode_name(mask)},
          {"expert_share", shares(all)}, {"modules", modules}};
}

Json inspect_path(const std::string& path) {
  Json r;
  if (is_directory(path) && file_exists(path + "/adapter_config.json")) {
    r = inspect_adapter(path);
  } else if (is_directory(path)) {
    r = inspect_hf(path);
  } else {
    TAIA_CHECK(file_exists(path), path, ": no such file or folder");
    bool gguf = false;
    {
      MappedFile f(path);
      gguf = f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0;
    }
    if (gguf)
      r = inspect_gguf(path);
    else if (path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0)
      r = inspect_safetensors_file(path);
    else
      fail(path, ": expected a GGUF file, a .safetensors file or an HF model folder");
  }
  r["path"] = path;
  return r;
}

namespace {

// The MoLoRA section: configuration, each module's expert norms and router, and with --data the
// share of routing slots per expert.
std::string experts_to_text(const Json& m) {
  std::ostringstream out;
  const Json& c = m["config"];
  out << "  MoLoRA: " << c.value("num_experts", 0) << " experts (rank " << c.value("r", 0) << ", top-"
      << c.value("top_k", 0) << ") on " << c.value("target_modules", Json::array()).dump() << "\n";
  out << "  module                                  ||update|| per expert                     ||router||\n";
  for (const Json& mod : m["modules"]) {
    std::string norms;
    for (const Json& n : mod["expert_update_norms"]) {
      char b[24];
      std::snprintf(b, sizeof(b), "%s%.4g", norms.empty() ? "" : " ", n.get<double>());
      norms += b;
    }
    char line[256];
    std::snprintf(line, sizeof(line), "  %-38s  %-34s  %.4g\n", mod["module"].get<std::string>().c_str(), norms.c_str(),
                  mod["router_weight_norm"].get<double>());
    out << line;
  }
  if (m.contains("routing")) {
    const Json& rt = m["routing"];
    out << "  routing on " << rt["data"].get<std::string>() << " (" << rt["tokens"].get<int64_t>()
        << " tokens, mode " << rt["mode"].get<std::string>() << "): share of slots per expert, all routers\n   ";
    for (const Json& s : rt["expert_share"]) {
      char b[16];
      std::snprintf(b, sizeof(b), " %.1f%%", 100.0 * s.get<double>());
      out << b;
    }
    out << "\n";
    for (const Json& mod : rt["modules"]) {
      std::string shares;
      for (const Json& s : mod["expert_share"]) {
        char b[16];
        std::snprintf(b, sizeof(b), " %.1f%%", 100.0 * s.get<double>());
        shares += b;
      }
      out << "    " << mod["module"].get<std::string>() << ":" << shares << "\n";
    }
  }
  return out.str();
}

}  // namespace

std::string inspect_to_text(const Json& r) {
  std::ostringstream out;
  auto field = [&](const std::string& name, const std::string& value) {
    out << "  " << name << std::string(std::max<size_t>(25 - name.size(), 1), ' ') << value << "\n";
  };
  out << r["path"].get<std::string>() << ": " << r["format"].get<std::string>() << "\n";
  if (r.contains("config")) {
    const Json& c = r["config"];
    field("architecture", c["architecture"].get<std::string>());
    for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
                          "rope_scaling", "max_position_embeddings", "tie_word_embeddings", "qkv_bias"})
      if (c.contains(k)) field(k, c[k].dump());
    std::string features;
    for (const Json& f : c.value("features", Json::array())) features += (features.empty() ? "" : ", ") + f.get<std::string>();
    field("features", features.empty() ? "none" : features);
  }
  if (r.contains("layers")) {
    out << "  layer   ||attention update||   ||FFN update||\n";
    for (const Json& l : r["layers"]) {
      char line[96];
      std::snprintf(line, sizeof(line), "  %5lld   %20.6g   %14.6g\n", (long long)l["layer"].get<int64_t>(),
                    l["attention_update_norm"].get<double>(), l["ffn_update_norm"].get<double>());
      out << line;
    }
  }
  if (r.contains("molora")) out << experts_to_text(r["molora"]);
  field("tensors", r["tensor_count"].dump());
  field("parameters", r["parameter_count"].dump());
  field("dtypes", r["dtypes"].dump());
  if (r.contains("bytes_per_type")) field("bytes per type", r["bytes_per_type"].dump());
  const Json& p = r["problems"];
  field("problems", p.empty() ? "none" : std::to_string(p.size()));
  for (const Json& s : p) out << "    - " << s.get<std::string>() << "\n";
  return out.str();
}

}  // namespace taia
