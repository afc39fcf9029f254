// Loading a decoder from an HF model folder (config.json + safetensors, single or sharded)
// or a GGUF file (architectures llama and qwen2), into one arena.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "io/gguf.h"
#include "model/weights.h"

namespace taia {

struct LoadOptions {
  // Storage of linear weights, embeddings and LM head. Unset: keep F32 and BF16 as stored;
  // F16 and the quantized block types are widened to F32 (the kernels compute with F32 or BF16 weights).
  std::optional<DType> linear_dtype;
};

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options = {});

// Hyper-parameters of a GGUF model of architecture llama or qwen2.
ModelConfig config_from_gguf(const GgufFile& gguf);

// Reserves the arena and points every weight view into it (contents zero). Used by the
// loader and by init-model.
void allocate_model(Model& model, DType linear_dtype);

// Reverses llama.cpp's Q/K row permutation for one head group: GGUF stores, within each head,
// the rotary pairs interleaved (row 2i+j) where HF has them split in halves (row j*hd/2+i).
void unpermute_qk_rows(float* rows, int64_t n_heads, int64_t head_dim, int64_t row_len);

}  // namespace taia
