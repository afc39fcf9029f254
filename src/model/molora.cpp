#include "model/molora.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/peft_adapter.h"
#include "model/weights.h"

namespace taia {

MoloraExperts MoloraExperts::create(const ModelConfig& model, const MoloraConfig& config, int64_t rank, float scale,
                                    uint64_t seed) {
  TAIA_CHECK(config.experts >= 2 && config.experts <= 256, "[molora] experts expected 2..256, got ", config.experts);
  TAIA_CHECK(config.top_k >= 1 && config.top_k <= config.experts, "[molora] top-k expected 1..", config.experts,
             " (the number of experts), got ", config.top_k);
  TAIA_CHECK(config.balance_coef >= 0 && std::isfinite(config.balance_coef),
             "[molora] balance coefficient expected >= 0, got ", config.balance_coef);
  TAIA_CHECK(rank >= 1 && rank <= 65536, "[molora] rank expected 1..65536, got ", rank);
  TAIA_CHECK(model.proj_layout() == ProjLayout::Split, "[molora] this model fuses gate and up into one gate_up_proj "
             "(Phi-3); MoLoRA routes each projection on its own and needs them split");
  MoloraExperts x;
  x.config = config;
  x.layers.resize(size_t(model.num_layers));
  // A stream of its own: the attention LoRA drawn from the run's seed stays what LoRA alone draws.
  Rng rng(seed ^ 0x6d6f6c6f7261ULL);
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      if (!config.targets[size_t(i)]) continue;
      MoloraModule m;
      m.experts = config.experts;
      m.top_k = config.top_k;
      m.rank = rank;
      m.scale = scale;
      std::tie(m.in, m.out) = module_shape(model, Proj(i));
      // kaiming_uniform_(a=sqrt(5)) and nn.Linear's bias init share the bound 1 / sqrt(fan_in).
      const float bound = 1.0f / std::sqrt(float(m.in));
      auto draw = [&](std::vector<float>& v, int64_t n) {
        v.resize(size_t(n));
        for (float& e : v) e = (2.0f * rng.uniform() - 1.0f) * bound;
      };
      draw(m.A, m.experts * rank * m.in);
      m.B.assign(size_t(m.experts * m.out * rank), 0.0f);
      draw(m.router_w, m.experts * m.in);
      draw(m.router_b, m.experts);
      m.dA.assign(m.A.size(), 0.0f);
      m.dB.assign(m.B.size(), 0.0f);
      m.d_router_w.assign(m.router_w.size(), 0.0f);
      m.d_router_b.assign(m.router_b.size(), 0.0f);
      x.layers[size_t(l)][size_t(i)] = std::move(m);
    }
  return x;
}

MoloraModule* MoloraExperts::find(int64_t layer, Proj p) {
  if (layer < 0 || layer >= int64_t(layers.size())) return nullptr;
  auto& m = layers[size_t(layer)][size_t(p)];
  return m ? &*m : nullptr;
}

const MoloraModule* MoloraExperts::find(int64_t layer, Proj p) const {
  return const_cast<MoloraExperts*>(this)->find(layer, p);
}

void MoloraExperts::zero_grad() {
  for (auto& layer : layers)
    for (auto& m : layer)
      if (m)
        for (std::vector<float>* g : {&m->dA, &m->dB, &m->d_router_w, &m->d_router_b})
          std::fill(g->begin(), g->end(), 0.0f);
}

int64_t MoloraExperts::parameter_count() const {
  int64_t n = 0;
  for (const auto& layer : layers)
    for (const auto& m : layer)
      if (m) n += int64_t(m->A.size() + m->B.size() + m->router_w.size() + m->router_b.size());
  return n;
}

std::string molora_key(int64_t layer, Proj p, const std::string& tail) {
  return kPeftKeyPrefix + module_name(layer, p) + "." + tail;
}

namespace {

// The four tensors of a module as (key, shape, data) views.
std::vector<TensorView> module_views(int64_t l, Proj p, const MoloraModule& m) {
  std::vector<TensorView> v;
  auto add = [&](const std::string& tail, std::vector<int64_t> shape, const float* data) {
    v.emplace_back(molora_key(l, p, tail), DType::F32, std::move(shape), const_cast<float*>(data));
  };
  for (int64_t e = 0; e < m.experts; ++e) {
    const std::string ex = "experts." + std::to_string(e) + ".";
    add(ex + "lora_A.weight", {m.rank, m.in}, m.A.data() + e * m.rank * m.in);
    add(ex + "lora_B.weight", {m.out, m.rank}, m.B.data() + e * m.out * m.rank);
  }
  add("router.weight", {m.experts, m.in}, m.router_w.data());
  add("router.bias", {m.experts}, m.router_b.data());
  return v;
}

const char* const kConfigKeys[] = {"peft_type", "num_experts", "top_k", "r", "lora_alpha", "use_rslora",
                                   "target_modules", "balance_coef", "expert_dropout"};

}  // namespace

void save_molora(const MoloraExperts& x, const std::string& dir, int64_t rank, double alpha, bool use_rslora) {
  make_directories(dir);
  Json cfg;
  cfg["peft_type"] = "MOLORA";
  cfg["num_experts"] = x.config.experts;
  cfg["top_k"] = x.config.top_k;
  cfg["r"] = rank;
  cfg["lora_alpha"] = alpha;
  cfg["use_rslora"] = use_rslora;
  cfg["target_modules"] = target_module_names(x.config.targets);
  cfg["balance_coef"] = x.config.balance_coef;
  cfg["expert_dropout"] = 0.0;  // the experts train without dropout, as the official implementation's do
  std::vector<TensorView> views;
  for (int64_t l = 0; l < int64_t(x.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const MoloraModule* m = x.find(l, Proj(i)))
        for (TensorView& v : module_views(l, Proj(i), *m)) views.push_back(std::move(v));
  write_safetensors(dir + "/" + kMoloraWeightsFile, views, {{"format", "pt"}});
  write_file_atomic(dir + "/" + kMoloraConfigFile, cfg.dump(2) + "\n");
}

bool load_molora(const std::string& dir, const ModelConfig& model, MoloraExperts& x) {
  const std::string cfg_path = dir + "/" + kMoloraConfigFile;
  if (!file_exists(cfg_path)) return false;
  Json j = parse_json_file(cfg_path);
  TAIA_CHECK(j.is_object(), cfg_path, ": expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    TAIA_CHECK(std::find(std::begin(kConfigKeys), std::end(kConfigKeys), it.key()) != std::end(kConfigKeys),
               cfg_path, ": unknown field '", it.key(), "' (taia reads peft_type, num_experts, top_k, r, lora_alpha, "
               "use_rslora, target_modules, balance_coef, expert_dropout)");
  TAIA_CHECK(json_string_or(j, "peft_type", "", cfg_path) == "MOLORA", cfg_path, ": peft_type expected MOLORA");
  TAIA_CHECK(json_number_or(j, "expert_dropout", 0.0, cfg_path) == 0.0, cfg_path,
             ": expert_dropout expected 0 (taia's experts run without dropout)");
  MoloraConfig c;
  c.experts = json_int(j, "num_experts", cfg_path);
  c.top_k = json_int(j, "top_k", cfg_path);
  c.balance_coef = json_number_or(j, "balance_coef", 0.0, cfg_path);
  const int64_t rank = json_int(j, "r", cfg_path);
  const double alpha = json_number_or(j, "lora_alpha", double(rank), cfg_path);
  TAIA_CHECK(std::isfinite(alpha) && alpha > 0, cfg_path, ": field 'lora_alpha' expected > 0, got ", alpha);
  const bool rslora = json_bool_or(j, "use_rslora", false, cfg_path);
  const Json tm = j.value("target_modules", Json());
  TAIA_CHECK(tm.is_array() && !tm.empty(), cfg_path, ": target_modules expected a non-empty list");
  c.targets.fill(false);
  for (const Json& t : tm) {
    TAIA_CHECK(t.is_string(), cfg_path, ": target_modules expected strings");
    const auto projs = projs_from_name(t.get<std::string>());
    TAIA_CHECK(projs.size() == 1, cfg_path, ": target module '", t.get<std::string>(), "' is not one of the seven "
               "projections");
    c.targets[size_t(projs[0])] = true;
  }
  const float scale = float(lora_scale(rank, alpha, rslora));
  try {
    x = MoloraExperts::create(model, c, rank, scale, 0);
  } catch (const Error& e) {
    fail(cfg_path, ": ", e.what());
  }
  SafetensorsFile f(dir + "/" + kMoloraWeightsFile);
  std::set<std::string> expected;
  for (int64_t l = 0; l < int64_t(x.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (MoloraModule* m = x.find(l, Proj(i))) {
        for (const TensorView& want : module_views(l, Proj(i), *m)) {
          expected.insert(want.name);
          const SafetensorsTensor* t = f.find(want.name);
          TAIA_CHECK(t != nullptr, f.path(), ": missing tensor '", want.name, "' (", kMoloraConfigFile,
                     " describes ", c.experts, " experts of rank ", rank, " on every layer's ",
                     targets_to_string(c.targets), ")");
          TAIA_CHECK(t->dtype == DType::F32 || t->dtype == DType::BF16 || t->dtype == DType::F16, f.path(), ": '",
                     want.name, "' expected F32, BF16 or F16, got ", dtype_name(t->dtype));
          TAIA_CHECK(t->shape == want.shape, f.path(), ": '", want.name, "' expected shape ", want.shape_string(),
                     ", got ", t->view().shape_string());
          convert_to_f32(t->dtype, t->data, static_cast<float*>(want.data), size_t(want.numel()));
        }
        for (std::vector<float>* g : {&m->dA, &m->dB, &m->d_router_w, &m->d_router_b}) g->clear();
      }
  for (const SafetensorsTensor& t : f.tensors())
    TAIA_CHECK(expected.count(t.name), f.path(), ": tensor '", t.name, "' matches no expert or router that ",
               kMoloraConfigFile, " describes (", model.num_layers, " layers, ", c.experts, " experts on ",
               targets_to_string(c.targets), ")");
  return true;
}

void remove_molora_files(const std::string& dir) {
  for (const char* f : {kMoloraConfigFile, kMoloraWeightsFile}) {
    const std::string path = dir + "/" + f;
    TAIA_CHECK(!file_exists(path) || std::remove(path.c_str()) == 0, path, ": cannot remove: ", std::strerror(errno));
  }
}

}  // namespace taia
