// Loading a decoder from an HF model folder (config.json + safetensors, single or sharded)
// or a GGUF file (architectures llama and qwen2), into one arena.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "io/gguf.h"
#include "model/weights.h"

namespace taia {

struct LoadOptions {
  // Storage of linear weights, embeddings and LM head. Unset: keep F32, BF16, F16 and GGUF's
  // block-quantized types as stored (the kernels read them; the first projection's type decides
  // the dense tensors' storage). Set: every such tensor converted to F32, BF16 or F16.
  std::optional<DType> linear_dtype;
  // Without linear_dtype: the type GGUF block-quantized weights are dequantized to (what merges
  // and HF writers need); unset: kept quantized.
  std::optional<DType> block_dtype;
  // GGUF: copy every tensor into the model's own memory (the file's pages dropped as copied)
  // instead of using the tensors stored as kept from the file's mapping (llama.cpp's --no-mmap).
  // Loading takes longer; on the test VM decode read fresh anonymous memory faster than the
  // page cache's pages in some runs (docs/BENCHMARKS.md).
  bool copy_weights = false;
};

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options = {});
// Whether a model file is a GGUF with block-quantized tensors (read before choosing how to load).
bool has_quantized_weights(const std::string& path);

// Hyper-parameters of a GGUF model of architecture llama or qwen2.
ModelConfig config_from_gguf(const GgufFile& gguf);

// Reserves the arena and points every weight view into it (contents zero). Used by the
// loader and by init-model. `kept`: tensors stored in another type (GGUF block types);
// `in_place`: tensors whose bytes are already where they will be used (a GGUF mapping), by name.
void allocate_model(Model& model, DType linear_dtype, const std::map<std::string, DType>& kept = {},
                    const std::map<std::string, void*>& in_place = {});

// Reverses llama.cpp's Q/K row permutation for one head group: GGUF stores, within each head,
// the rotary pairs interleaved (row 2i+j) where HF has them split in halves (row j*hd/2+i).
void unpermute_qk_rows(float* rows, int64_t n_heads, int64_t head_dim, int64_t row_len);
// The same on rows of any storage type, row_bytes each (a quantized row is a run of blocks).
void unpermute_qk_row_bytes(void* rows, int64_t n_heads, int64_t head_dim, size_t row_bytes);

}  // namespace taia
