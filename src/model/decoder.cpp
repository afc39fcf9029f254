#include "model/decoder.h"

#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace taia {

Decoder::Decoder(const Model& model) : model_(model) {
  const ModelConfig& c = model.config;
  s_.inv_freq = rope_inv_freq(c.head_dim, float(c.rope_theta), c.rope_scaling,
                              model.rope_freq_factors.empty() ? nullptr : &model.rope_freq_factors);
}

namespace {

void embed_rows(float* out, const TensorView& embed, const int32_t* tokens, int64_t T, int64_t D) {
  const int64_t V = embed.shape[0];
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = tokens[t];
    TAIA_CHECK(id >= 0 && id < V, "[Decoder::forward] token id ", id, " at position ", t,
               " is outside the vocabulary (", V, ")");
    const char* row = static_cast<const char*>(embed.data) + size_t(id * D) * dtype_size(embed.dtype);
    convert_to_f32(embed.dtype, row, out + t * D, size_t(D));
  }
}

}  // namespace

void Decoder::forward(KVCache& cache, const int32_t* tokens, int64_t T, float* logits, bool all_logits) {
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t D = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const int64_t pos0 = cache.length();
  TAIA_CHECK(T > 0, "[Decoder::forward] expected at least one token");
  TAIA_CHECK(pos0 + T <= cache.max_positions(), "[Decoder::forward] expected at most ", cache.max_positions(),
             " positions in the KV cache, got ", pos0 + T);
  s_.x.resize(size_t(T * D));
  s_.xn.resize(size_t(T * D));
  s_.q.resize(size_t(T * Q));
  s_.att.resize(size_t(T * Q));
  s_.gate.resize(size_t(T * I));
  s_.up.resize(size_t(T * I));
  s_.pos.resize(size_t(T));
  for (int64_t t = 0; t < T; ++t) s_.pos[size_t(t)] = pos0 + t;

  float* x = s_.x.data();
  float* xn = s_.xn.data();
  embed_rows(x, w.embed, tokens, T, D);
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[size_t(l)];
    float* k_rows = cache.keys(l) + pos0 * KV;  // [T, KV] slots for the new positions
    float* v_rows = cache.values(l) + pos0 * KV;
    rmsnorm_forward(xn, x, L.attn_norm.ptr<const float>(), T, D, float(c.rms_norm_eps));
    linear_forward(s_.q.data(), xn, L.q.weight, L.q.bias_ptr(), T);
    linear_forward(k_rows, xn, L.k.weight, L.k.bias_ptr(), T);
    linear_forward(v_rows, xn, L.v.weight, L.v.bias_ptr(), T);
    rope_forward(s_.q.data(), s_.pos.data(), T, c.num_heads, c.head_dim, s_.inv_freq.data());
    rope_forward(k_rows, s_.pos.data(), T, c.num_kv_heads, c.head_dim, s_.inv_freq.data());
    attention_forward(s_.att.data(), s_.q.data(), cache.keys(l), cache.values(l), T, pos0, cache.row_stride(), shape);
    linear_forward(x, s_.att.data(), L.o.weight, L.o.bias_ptr(), T, /*accumulate=*/true);

    rmsnorm_forward(xn, x, L.ffn_norm.ptr<const float>(), T, D, float(c.rms_norm_eps));
    linear_forward(s_.gate.data(), xn, L.gate.weight, L.gate.bias_ptr(), T);
    linear_forward(s_.up.data(), xn, L.up.weight, L.up.bias_ptr(), T);
    swiglu_forward(s_.gate.data(), s_.gate.data(), s_.up.data(), T * I);
    linear_forward(x, s_.gate.data(), L.down.weight, L.down.bias_ptr(), T, /*accumulate=*/true);
  }
  cache.set_length(pos0 + T);
  const int64_t first = all_logits ? 0 : T - 1;
  const int64_t rows = T - first;
  rmsnorm_forward(xn, x + first * D, w.final_norm.ptr<const float>(), rows, D, float(c.rms_norm_eps));
  linear_forward(logits, xn, w.lm_head, nullptr, rows);
}

}  // namespace taia
