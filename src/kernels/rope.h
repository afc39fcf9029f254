// Rotary position embedding in HF's rotate-half convention: the pairs are (i, i + d/2)
// within each head, not adjacent elements (llama.cpp/Meta's convention; GGUF LLaMA weights
// are un-permuted on load so that this one convention serves every source).
// The inference forward, the training forward and its backward, with one set of names:
// x [rows, n_heads, head_dim] rotated in place, row r at position positions[r].
// Partial rotary (Phi-4-mini's partial_rotary_factor, HF's rotary_dim = cos.shape[-1]): only
// the first rotary_dims channels of each head rotate, as pairs (i, i + rotary_dims/2); the rest
// pass through. The frequencies then number rotary_dims / 2.
#pragma once
#include <cstdint>
#include <vector>

namespace taia {

struct RopeScaling {
  // LongRope: Phi-3's (HF "longrope", formerly "su"): every frequency divided by its own factor,
  // short_factor while a sequence fits original_max_position_embeddings, long_factor beyond,
  // and cos/sin multiplied by attention_factor.
  enum class Type { None, Linear, Llama3, LongRope };
  Type type = Type::None;
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
  std::vector<float> short_factor, long_factor;  // [rotary_dims/2] (LongRope)
  float attention_factor = 1.0f;                 // (LongRope)

  // Whether a sequence of `length` positions rotates with long_factor: HF decides per forward
  // call by max(position_ids) + 1 > original_max_position_embeddings.
  bool uses_long_factors(int64_t length) const {
    return type == Type::LongRope && length > original_max_position_embeddings;
  }
  // What cos/sin are multiplied by.
  float mscale() const { return type == Type::LongRope ? attention_factor : 1.0f; }
};

// inv_freq[rotary_dims/2] as HF computes it (F32 arithmetic, `dim` = rotary_dims: head_dim, or
// less for a partial rotary), with llama3, linear or LongRope scaling (long_factor when
// `long_factors`, else short_factor). freq_factors (optional, GGUF `rope_freqs.weight`) divide
// the frequencies like llama3's.
std::vector<float> rope_inv_freq(int64_t rotary_dims, float theta, const RopeScaling& scaling,
                                 const std::vector<float>* freq_factors = nullptr, bool long_factors = false);

// cos/sin of position * inv_freq for positions 0..positions-1: [positions, rotary_dims/2] each,
// computed once per batch shape instead of per row and call (training).
struct RopeTable {
  int64_t half = 0;  // rotary_dims / 2: the pairs each head rotates
  std::vector<float> cos, sin;
};
// mscale multiplies cos and sin (LongRope's attention factor), as HF's rotary embedding does.
RopeTable rope_table(const std::vector<float>& inv_freq, int64_t positions, float mscale = 1.0f);

// Inference: cos/sin computed per row from inv_freq[rotary_dims/2] (positions are arbitrary),
// times mscale. rotary_dims 0: the whole head.
void rope_forward(float* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                  const float* inv_freq, float mscale = 1.0f, int64_t rotary_dims = 0);

// Training: cos/sin from a table covering every position; the table's `half` pairs of each head
// rotate (2 * half <= head_dim). Templated on the scalar (float in
// training, double in the gradient checks).
template <typename T>
void rope_train_forward(T* x, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                        const RopeTable& table);
// The rotation is orthogonal (times mscale), so its backward rotates the gradient dx
// [rows, n_heads, head_dim] by the negative angle (times mscale), in place.
template <typename T>
void rope_backward(T* dx, const int64_t* positions, int64_t rows, int64_t n_heads, int64_t head_dim,
                   const RopeTable& table);

}  // namespace taia
