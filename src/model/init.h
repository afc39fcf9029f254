// Random initialisation of a model and saving it as an HF folder.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/weights.h"

namespace taia {

enum class InitScheme {
  Hf,    // as HF's _init_weights: N(0, std) for linear/embedding, biases 0, norms 1
  Full,  // everything random (norms 1 + N(0, 0.1), biases N(0, std)): for parity tests
};

std::unique_ptr<Model> init_model(const ModelConfig& config, uint64_t seed, DType linear_dtype,
                                  InitScheme scheme = InitScheme::Hf, float std = 0.02f);

// Writes config.json + model.safetensors into dir (created if needed), each file atomically.
// Tensors are stored in `dtype` (norms and biases too, as HF saves a whole model in one dtype).
void save_hf_folder(Model& model, const std::string& dir, DType dtype);

// The one writer of a complete model folder (taia merge, taia export --format hf, full
// fine-tuning): save_hf_folder, the tokenizer files of `source` (copy_tokenizer_files), and
// generation_config.json: the source's, else one with the config's BOS/EOS ids as HF's
// save_pretrained writes it. A GGUF source has no tokenizer files to copy (its vocabulary is
// inside the GGUF file).
void save_model_folder(Model& model, const std::string& dir, DType dtype, const std::string& source);
// The dtype an HF folder of the model is written in: its linear dtype, or BF16 when weights of a
// quantized GGUF were dequantized to BF16 on load (LoadOptions::block_dtype).
DType model_file_dtype(Model& model);

// Copies tokenizer.json, tokenizer_config.json, tokenizer.model, special_tokens_map.json and
// generation_config.json (those present) from an HF folder into dir, so an exported or trained
// model folder is self-contained. A `from` that is not a folder (a GGUF file) copies nothing.
void copy_tokenizer_files(const std::string& from, const std::string& dir);

}  // namespace taia
