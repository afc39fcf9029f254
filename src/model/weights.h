// The weights of one decoder, in one arena. Linear weights keep the PyTorch layout
// [out_features, in_features] in F32 or BF16; norms and biases are F32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/mmap_file.h"
#include "core/tensor.h"
#include "kernels/quant_packed.h"
#include "model/config.h"
#include "model/tensor_names.h"

namespace taia {

struct Linear {
  TensorView weight;  // [out, in], F32 or BF16
  TensorView bias;    // [out] F32, or empty
  const float* bias_ptr() const { return bias.empty() ? nullptr : bias.ptr<const float>(); }
};

struct LayerWeights {
  TensorView attn_norm;  // [D]
  Linear q, k, v, o;     // q: [H*hd, D], k/v: [KV*hd, D], o: [D, H*hd]
  TensorView q_norm, k_norm;  // [hd] Qwen3's QK-norm, or empty
  TensorView attn_out_norm, ffn_out_norm;  // [D] Gemma 2's norms on the attention / FFN outputs, or empty
  TensorView ffn_norm;   // [D]
  Linear gate, up, down; // gate/up: [I, D], down: [D, I]
  // Phi-3's fused storage (ProjLayout::Fused), else empty: qkv [H*hd + 2*KV*hd, D] and gate_up
  // [2*I, D]; q, k, v and gate, up above are then views of their rows.
  Linear qkv, gate_up;
};

// The weight a LoRA module in slot p adapts: the projection's, or in a fused layer the fused
// tensor of p's group (qkv for Q, gate_up for Gate).
const Linear& module_linear(const LayerWeights& w, Proj slot);

struct ModelWeights {
  TensorView embed;       // [V, D]
  std::vector<LayerWeights> layers;
  TensorView final_norm;  // [D]
  TensorView lm_head;     // [V, D]; the same storage as embed when tied
};

// In and out features of a projection, and whether the config gives it a bias.
std::pair<int64_t, int64_t> proj_shape(const ModelConfig& c, Proj p);
// In and out features of the module in slot p: the projection's, or a fused group's (out summed).
std::pair<int64_t, int64_t> module_shape(const ModelConfig& c, Proj slot);
// The first row of p within its module's tensor: 0, or its offset in a fused tensor (K: H*hd).
int64_t proj_row_offset(const ModelConfig& c, Proj p);
bool proj_has_bias(const ModelConfig& c, Proj p);

// What a checkpoint must hold for a config, in HF names (model.layers.N.self_attn.q_proj.weight ...).
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool is_linear;  // stored in the linear dtype (else F32: norms, biases)
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c);
// A norm's weight (F32, not a bias).
bool is_norm_tensor(const ExpectedTensor& e);

struct Model {
  ModelConfig config;
  ModelWeights weights;
  Arena arena;
  // The GGUF file's copy-on-write mapping when some tensors are used in place (their views
  // point into it), and how many bytes those tensors hold.
  std::shared_ptr<const MappedFile> mapping;
  size_t mapped_bytes = 0;
  DType linear_dtype = DType::F32;
  std::string source_path;
  std::string source_format;  // "hf" or "gguf"
  std::vector<float> rope_freq_factors;  // GGUF rope_freqs.weight (llama3 scaling), or empty
  // Q4_0 / Q8_0 weights repacked for the integer products (kernels/quant_packed), made by the
  // first decoder that multiplies them and shared by every decoder of this model. Whatever
  // writes a weight afterwards (merge_full) clears it.
  std::shared_ptr<PackedQuantCache> packed = std::make_shared<PackedQuantCache>();

  // The view of one tensor by its HF name (e.g. "model.layers.0.mlp.up_proj.weight").
  TensorView* find(const std::string& hf_name);
  // All tensors with HF names, in checkpoint order (the lm_head is skipped when tied).
  std::vector<TensorView*> named_tensors();
  std::vector<const TensorView*> named_tensors() const;
  // Bytes of weights in memory: the arena and the tensors used in place from the mapping.
  size_t weight_bytes() const { return arena.capacity() + mapped_bytes; }
  // Whether some weight is kept in a GGUF block type (a quantized, frozen base).
  bool has_block_weights() const;
};

}  // namespace taia
