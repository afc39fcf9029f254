#include "model/peft_adapter.h"

#include <cmath>
#include <map>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "model/molora.h"

namespace taia {

std::string peft_key(int64_t layer, Proj p, const char* ab, ProjLayout layout) {
  return kPeftKeyPrefix + module_name(layer, p, layout) + ".lora_" + ab + ".weight";
}

void save_peft_adapter(const LoraAdapter& a, const std::string& dir, const std::string& base_model) {
  make_directories(dir);
  const LoraConfig& c = a.config;
  Json cfg;
  cfg["peft_type"] = "LORA";
  cfg["task_type"] = "CAUSAL_LM";
  cfg["r"] = c.rank;
  cfg["lora_alpha"] = c.alpha;
  cfg["lora_dropout"] = c.dropout;
  cfg["bias"] = "none";
  cfg["use_rslora"] = c.use_rslora;
  cfg["use_dora"] = false;
  cfg["fan_in_fan_out"] = false;
  cfg["init_lora_weights"] = true;
  cfg["inference_mode"] = true;
  cfg["modules_to_save"] = nullptr;
  cfg["base_model_name_or_path"] = base_model;
  // Module names: a fused group's once ("qkv_proj").
  cfg["target_modules"] = c.target_regex.empty() ? Json(target_module_names(c.targets, a.layout)) : Json(c.target_regex);
  cfg["rank_pattern"] = Json(c.rank_pattern);
  cfg["alpha_pattern"] = Json(c.alpha_pattern);
  cfg["layers_to_transform"] = c.layers_to_transform.empty() ? Json(nullptr) : Json(c.layers_to_transform);
  std::vector<TensorView> views;
  for (int64_t l = 0; l < int64_t(a.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const LoraModule* m = a.find(l, Proj(i))) {
        views.emplace_back(peft_key(l, Proj(i), "A", a.layout), DType::F32, std::vector<int64_t>{m->rank, m->in},
                           const_cast<float*>(m->A.data()));
        views.emplace_back(peft_key(l, Proj(i), "B", a.layout), DType::F32, std::vector<int64_t>{m->out, m->rank},
                           const_cast<float*>(m->B.data()));
      }
  write_safetensors(dir + "/adapter_model.safetensors", views, {{"format", "pt"}});
  write_file_atomic(dir + "/adapter_config.json", cfg.dump(2) + "\n");
  // MoLoRA's experts and routers beside the LoRA part (whose files PEFT reads as they are).
  if (!a.molora.empty())
    save_molora(a.molora, dir, c.rank, c.alpha, c.use_rslora);
  else
    remove_molora_files(dir);
}

LoraConfig read_peft_config(const std::string& dir) {
  const std::string cfg_path = dir + "/adapter_config.json";
  TAIA_CHECK(file_exists(cfg_path), dir, ": expected a PEFT adapter folder with adapter_config.json");
  for (const char* pickle : {"adapter_model.bin", "adapter_model.pt", "adapter_model.pth"})
    TAIA_CHECK(file_exists(dir + "/adapter_model.safetensors") || !file_exists(dir + "/" + pickle), dir, ": ",
               pickle, " is a pickle file, which can run code when loaded; taia refuses it. Convert it once with "
               "PEFT: PeftModel.from_pretrained(base, dir).save_pretrained(out, safe_serialization=True)");
  return peft_config_from_json(parse_json_file(cfg_path), cfg_path);
}

LoraConfig peft_config_from_json(const Json& j, const std::string& cfg_path) {
  TAIA_CHECK(j.is_object(), cfg_path, ": expected a JSON object");
  const std::string type = json_string_or(j, "peft_type", "LORA", cfg_path);
  TAIA_CHECK(type == "LORA", cfg_path, ": peft_type expected LORA, got '", type, "'");
  TAIA_CHECK(!json_bool_or(j, "use_dora", false, cfg_path), cfg_path, ": DoRA adapters (use_dora) are not supported");
  TAIA_CHECK(j.value("modules_to_save", Json()).is_null(), cfg_path,
             ": modules_to_save is not supported (taia adapts only the seven projections)");
  LoraConfig c;
  c.rank = json_int(j, "r", cfg_path);
  TAIA_CHECK(c.rank >= 1 && c.rank <= 65536, cfg_path, ": field 'r' expected 1..65536, got ", c.rank);
  c.alpha = json_number_or(j, "lora_alpha", double(c.rank), cfg_path);
  TAIA_CHECK(std::isfinite(c.alpha) && c.alpha > 0, cfg_path, ": field 'lora_alpha' expected > 0, got ", c.alpha);
  c.dropout = json_number_or(j, "lora_dropout", 0.0, cfg_path);
  TAIA_CHECK(c.dropout >= 0 && c.dropout < 1, cfg_path, ": field 'lora_dropout' expected in [0, 1), got ", c.dropout);
  c.use_rslora = json_bool_or(j, "use_rslora", false, cfg_path);
  c.targets.fill(false);
  const Json tm = j.value("target_modules", Json());
  if (tm.is_string()) {
    // PEFT: "all-linear", or a regex that must match a module's whole name.
    c.targets.fill(true);
    if (tm.get<std::string>() != "all-linear") c.target_regex = tm.get<std::string>();
  } else {
    TAIA_CHECK(tm.is_array(), cfg_path, ": target_modules expected a list or a string");
    for (const Json& t : tm) {
      TAIA_CHECK(t.is_string(), cfg_path, ": target_modules expected strings");
      const auto projs = projs_from_name(t.get<std::string>());
      TAIA_CHECK(!projs.empty(), cfg_path, ": target module '", t.get<std::string>(),
                 "' is not one of the seven projections or Phi-3's fused qkv_proj / gate_up_proj (embedding LoRA "
                 "is not supported)");
      for (Proj p : projs) c.targets[size_t(p)] = true;
    }
  }
  const Json rp = j.value("rank_pattern", Json::object()), ap = j.value("alpha_pattern", Json::object());
  TAIA_CHECK(rp.is_object() && ap.is_object(), cfg_path, ": rank_pattern and alpha_pattern expected objects");
  for (auto it = rp.begin(); it != rp.end(); ++it) {
    TAIA_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 1 && it.value().get<int64_t>() <= 65536,
               cfg_path, ": rank_pattern['", it.key(), "'] expected a rank 1..65536, got ", it.value().dump());
    c.rank_pattern[it.key()] = it.value().get<int64_t>();
  }
  for (auto it = ap.begin(); it != ap.end(); ++it) {
    TAIA_CHECK(it.value().is_number() && std::isfinite(it.value().get<double>()) && it.value().get<double>() > 0,
               cfg_path, ": alpha_pattern['", it.key(), "'] expected a number > 0, got ", it.value().dump());
    c.alpha_pattern[it.key()] = it.value().get<double>();
  }
  const Json lt = j.value("layers_to_transform", Json());
  if (lt.is_number_integer()) {
    c.layers_to_transform = {lt.get<int64_t>()};
  } else if (lt.is_array()) {
    for (const Json& v : lt) {
      TAIA_CHECK(v.is_number_integer(), cfg_path, ": layers_to_transform expected integers, got ", v.dump());
      c.layers_to_transform.push_back(v.get<int64_t>());
    }
  } else {
    TAIA_CHECK(lt.is_null(), cfg_path, ": layers_to_transform expected an integer or a list, got ", lt.dump());
  }
  // fan_in_fan_out describes Conv1D base layers (GPT-2); LLaMA/Qwen projections are nn.Linear,
  // for which PEFT itself resets the flag to false (with a warning): A and B keep their shapes.
  (void)json_bool_or(j, "fan_in_fan_out", false, cfg_path);
  return c;
}

LoraAdapter peft_adapter_from_tensors(const LoraConfig& c, const std::vector<TensorView>& tensors,
                                      const std::string& where, const std::string& cfg_path, const ModelConfig& model) {
  LoraAdapter a = LoraAdapter::create(model, c, 0);
  std::map<std::string, const TensorView*> by_name;
  for (const TensorView& t : tensors) by_name[t.name] = &t;
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      LoraModule* m = a.find(l, Proj(i));
      if (!m) continue;
      for (const char* ab : {"A", "B"}) {
        const std::string key = peft_key(l, Proj(i), ab, a.layout);
        const auto it = by_name.find(key);
        TAIA_CHECK(it != by_name.end(), where, ": missing tensor '", key, "' required by ", cfg_path);
        const TensorView& t = *it->second;
        std::vector<int64_t> want = ab[0] == 'A' ? std::vector<int64_t>{m->rank, m->in}
                                                  : std::vector<int64_t>{m->out, m->rank};
        TAIA_CHECK(t.shape == want, where, ": tensor '", key, "' expected shape ", TensorView("", DType::F32, want, nullptr).shape_string(),
                   ", got ", t.shape_string());
        std::vector<float>& dst = ab[0] == 'A' ? m->A : m->B;
        convert_to_f32(t.dtype, t.data, dst.data(), dst.size());
      }
    }
  // Every tensor must belong to a module this model has (an adapter for a deeper model, or for
  // modules taia does not adapt, is refused rather than silently half-applied).
  for (const TensorView& t : tensors) {
    bool known = false;
    for (int64_t l = 0; l < model.num_layers && !known; ++l)
      for (int i = 0; i < kNumProj && !known; ++i)
        if (a.find(l, Proj(i)) &&
            (t.name == peft_key(l, Proj(i), "A", a.layout) || t.name == peft_key(l, Proj(i), "B", a.layout)))
          known = true;
    TAIA_CHECK(known, where, ": tensor '", t.name, "' matches no adapted module of the model (",
               model.num_layers, " layers; targets ", targets_to_string(c.targets, model.proj_layout()), ")");
  }
  return a;
}

LoraAdapter load_peft_adapter(const std::string& dir, const ModelConfig& model) {
  const LoraConfig c = read_peft_config(dir);
  SafetensorsFile st(dir + "/adapter_model.safetensors");
  std::vector<TensorView> tensors;
  for (const SafetensorsTensor& t : st.tensors()) tensors.push_back(t.view());
  LoraAdapter a = peft_adapter_from_tensors(c, tensors, st.path(), dir + "/adapter_config.json", model);
  load_molora(dir, model, a.molora);
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i)
      TAIA_CHECK(!a.find(l, Proj(i)) || !a.molora.find(l, Proj(i)), dir, ": ", a.module_name(l, Proj(i)),
                 " has both a LoRA module (adapter_config.json) and experts (", kMoloraConfigFile, ")");
  return a;
}

}  // namespace taia
