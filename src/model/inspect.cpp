#include "model/inspect.h"

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "model/weights.h"

namespace taia {
namespace {

Json config_json(const ModelConfig& c) {
  Json j;
  j["architecture"] = arch_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_layers"] = c.num_layers;
  j["num_heads"] = c.num_heads;
  j["num_kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = c.rope_scaling.type == RopeScaling::Type::None     ? "none"
                      : c.rope_scaling.type == RopeScaling::Type::Linear ? "linear"
                                                                          : "llama3";
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["qkv_bias"] = c.qkv_bias;
  j["bos_token_ids"] = c.bos_token_ids;
  j["eos_token_ids"] = c.eos_token_ids;
  return j;
}

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
    if (!used.count(name) && name != "rope_freqs.weight") problems.push_back("unexpected tensor '" + name + "'");
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
  std::map<std::string, std::vector<int64_t>> present;
  std::map<std::string, int64_t> dtypes;
  int64_t params = 0;
  for (const SafetensorsTensor* t : st.all()) {
    present[t->name] = t->shape;
    dtypes[dtype_name(t->dtype)] += 1;
    params += checked_numel(t->shape, t->name);
  }
  r["files"] = Json::array();
  for (const auto& f : st.files()) r["files"].push_back(f->path());
  r["tensor_count"] = present.size();
  r["parameter_count"] = params;
  r["dtypes"] = dtypes;
  if (have_config) check_expected(c, present, [](const std::string& n) { return n; }, problems);
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
    if (k.rfind("tokenizer.ggml.", 0) != 0 || v.type != GgufType::ARRAY) meta[k] = v.to_string();
    else meta[k] = str_cat("[", v.arr.size(), " items]");
  r["metadata"] = meta;
  std::map<std::string, std::vector<int64_t>> present;
  std::map<std::string, int64_t> types;
  int64_t params = 0;
  for (const GgufTensor& t : g.tensors()) {
    present[t.name] = t.shape();
    types[ggml_type_name(t.type)] += 1;
    params += t.numel();
    if (!gguf_type_supported(t.type))
      problems.push_back(str_cat("tensor '", t.name, "' has type ", ggml_type_name(t.type),
                                 " (taia loads F32, F16, BF16, Q8_0)"));
  }
  r["tensor_count"] = g.tensors().size();
  r["parameter_count"] = params;
  r["dtypes"] = types;
  try {
    ModelConfig c = config_from_gguf(g);
    r["config"] = config_json(c);
    check_expected(c, present, gguf_tensor_name, problems);
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
  std::map<std::string, int64_t> dtypes;
  int64_t params = 0;
  for (const auto& t : f.tensors()) {
    dtypes[dtype_name(t.dtype)] += 1;
    params += checked_numel(t.shape, t.name);
  }
  r["tensor_count"] = f.tensors().size();
  r["parameter_count"] = params;
  r["dtypes"] = dtypes;
  r["metadata"] = f.metadata();
  r["problems"] = Json::array();
  return r;
}

}  // namespace

Json inspect_path(const std::string& path) {
  Json r;
  if (is_directory(path)) {
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

std::string inspect_to_text(const Json& r) {
  std::ostringstream out;
  out << r["path"].get<std::string>() << ": " << r["format"].get<std::string>() << "\n";
  if (r.contains("config")) {
    const Json& c = r["config"];
    out << "  architecture   " << c["architecture"].get<std::string>() << "\n";
    for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                          "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
                          "tie_word_embeddings", "qkv_bias"})
      out << "  " << k << std::string(k == std::string("max_position_embeddings") ? 1 : 24 - std::strlen(k), ' ')
          << c[k].dump() << "\n";
  }
  out << "  tensors        " << r["tensor_count"].dump() << "\n";
  out << "  parameters     " << r["parameter_count"].dump() << "\n";
  out << "  dtypes         " << r["dtypes"].dump() << "\n";
  const Json& p = r["problems"];
  if (p.empty()) {
    out << "  problems       none\n";
  } else {
    out << "  problems       " << p.size() << "\n";
    for (const Json& s : p) out << "    - " << s.get<std::string>() << "\n";
  }
  return out.str();
}

}  // namespace taia
