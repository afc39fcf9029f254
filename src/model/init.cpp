#include "model/init.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/loader.h"

namespace taia {

std::unique_ptr<Model> init_model(const ModelConfig& config, uint64_t seed, DType linear_dtype, InitScheme scheme,
                                  float std) {
  config.validate("[init_model] config");
  auto model = std::make_unique<Model>();
  model->config = config;
  model->source_format = "init";
  allocate_model(*model, linear_dtype);
  Rng rng(seed);
  for (const ExpectedTensor& e : expected_tensors(config)) {
    TensorView& t = *model->find(e.name);
    std::vector<float> values(size_t(t.numel()));
    const bool is_norm = e.name.find("norm") != std::string::npos;
    // Gemma's norms multiply by (1 + w): HF initialises w to 0, a scale of 1.
    const float norm_one = config.norm_plus_one ? 0.0f : 1.0f;
    const bool is_bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;
    for (float& v : values) {
      if (is_norm)
        v = scheme == InitScheme::Full ? norm_one + float(0.1 * rng.normal()) : norm_one;
      else if (is_bias)
        v = scheme == InitScheme::Full ? float(std * rng.normal()) : 0.0f;
      else
        v = float(std * rng.normal());
    }
    convert_from_f32(values.data(), t.dtype, t.data, values.size());
  }
  return model;
}

void save_hf_folder(Model& model, const std::string& dir, DType dtype) {
  make_directories(dir);
  ModelConfig config = model.config;
  config.torch_dtype = dtype == DType::F32 ? "float32" : dtype == DType::BF16 ? "bfloat16" : "float16";
  write_file_atomic(dir + "/config.json", config_to_hf_json(config).dump(2) + "\n");
  // Convert every tensor to the file dtype; storage kept alive until written.
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorView> views;
  for (TensorView* t : model.named_tensors()) {
    if (t->dtype == dtype) {
      views.push_back(*t);
      continue;
    }
    std::vector<float> f32(size_t(t->numel()));
    convert_to_f32(t->dtype, t->data, f32.data(), f32.size());
    storage.emplace_back(size_t(t->numel()) * dtype_size(dtype));
    convert_from_f32(f32.data(), dtype, storage.back().data(), f32.size());
    views.emplace_back(t->name, dtype, t->shape, storage.back().data());
  }
  write_safetensors(dir + "/model.safetensors", views, {{"format", "pt"}});
}

DType model_file_dtype(Model& model) {
  for (TensorView* t : model.named_tensors())
    if (t->dtype == DType::BF16) return DType::BF16;
  return model.linear_dtype;
}

void copy_tokenizer_files(const std::string& from, const std::string& dir) {
  if (!is_directory(from)) return;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                        "generation_config.json"})
    if (file_exists(from + "/" + f)) write_file_atomic(dir + "/" + f, read_text_file(from + "/" + f));
}

void save_model_folder(Model& model, const std::string& dir, DType dtype, const std::string& source) {
  save_hf_folder(model, dir, dtype);
  copy_tokenizer_files(source, dir);
  if (is_directory(source) && file_exists(source + "/generation_config.json")) return;  // copied
  Json gen{{"_from_model_config", true}};
  auto ids = [](const std::vector<int64_t>& v) { return v.size() == 1 ? Json(v[0]) : Json(v); };
  if (!model.config.bos_token_ids.empty()) gen["bos_token_id"] = ids(model.config.bos_token_ids);
  if (!model.config.eos_token_ids.empty()) gen["eos_token_id"] = ids(model.config.eos_token_ids);
  write_file_atomic(dir + "/generation_config.json", gen.dump(2) + "\n");
}

}  // namespace taia
