// Rotary position embedding in HF's rotate-half convention: the pairs are (i, i + d/2)
// within each head, not adjacent elements (llama.cpp/Meta's convention; GGUF LLaMA weights
// are un-permuted on load so that this one convention serves every source).
// The inference forward, the training forward and its backward, with one set of names:
// x [rows, n_heads, head_dim] rotated in place, row r at position positions[r].
#pragma once
#include <cstdint>
#include <vector>

namespace taia {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};

// inv_freq[head_dim/2] as HF computes it (F32 arithmetic), with llama3 or linear scaling.
// freq_factors (optional, GGUF `rope_freqs.weight`) divide the frequencies like llama3's.
std::vector<float> rope_inv_freq(int64_t head_dim, float theta, const RopeScaling& scaling,
                                 const std::vector<float>* freq_factors = nullptr);

// cos/sin of position * inv_freq for positions 0..positions-1: [positions, head_dim/2] each,
// computed once per batch shape instead of per row and call (training).
struct RopeTable {
  int64_t half = 0;
  std::vector<float> cos, sin;
};
RopeTable rope_table(const std::vector<float>& inv_freq, int64_t positions);

// Inference: cos/sin computed per row from inv_freq[head_dim/2] (positions are arbitrary).
void rope_forward(float* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                  const float* inv_freq);

// Training: cos/sin from a table covering every position. Templated on the scalar (float in
// training, double in the gradient checks).
template <typename T>
void rope_train_forward(T* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                        const RopeTable& table);
// The rotation is orthogonal, so its backward rotates the gradient dx [rows, n_heads, head_dim]
// by the negative angle, in place.
template <typename T>
void rope_backward(T* dx, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                   const RopeTable& table);

}  // namespace taia
