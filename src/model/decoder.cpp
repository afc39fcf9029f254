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

void Decoder::set_adapter(const LoraAdapter* adapter, const ModuleMask& mask) {
  if (adapter) {
    const ModelConfig& c = model_.config;
    TAIA_CHECK(int64_t(adapter->layers.size()) == c.num_layers, "[Decoder::set_adapter] the adapter has ",
               adapter->layers.size(), " layers, the model ", c.num_layers);
    for (int64_t l = 0; l < c.num_layers; ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (const LoraModule* m = adapter->find(l, Proj(i))) {
          const auto [in, out] = proj_shape(c, Proj(i));
          TAIA_CHECK(m->in == in && m->out == out, "[Decoder::set_adapter] ", module_name(l, Proj(i)), " is [",
                     m->out, ", ", m->in, "] in the adapter but [", out, ", ", in, "] in the model");
        }
  }
  adapter_ = adapter;
  mask_ = mask;
}

void Decoder::project(int64_t layer, Proj p, const Linear& lin, float* y, const float* x, int64_t T, bool accumulate) {
  linear_forward(y, x, lin.weight, lin.bias_ptr(), T, accumulate);
  if (!adapter_ || !mask_[size_t(p)]) return;
  const LoraModule* m = adapter_->find(layer, p);
  if (!m) return;
  lora_u_.resize(size_t(T * m->rank));
  linear_forward_few_rows(lora_u_.data(), x, TensorView("lora_A", DType::F32, {m->rank, m->in},
                                                        const_cast<float*>(m->A.data())), T);
  sgemm(false, true, T, m->out, m->rank, m->scale, lora_u_.data(), m->rank, m->B.data(), m->rank, 1.0f, y, m->out);
}

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
    project(l, Proj::Q, L.q, s_.q.data(), xn, T, false);
    project(l, Proj::K, L.k, k_rows, xn, T, false);
    project(l, Proj::V, L.v, v_rows, xn, T, false);
    rope_forward(s_.q.data(), s_.pos.data(), T, c.num_heads, c.head_dim, s_.inv_freq.data());
    rope_forward(k_rows, s_.pos.data(), T, c.num_kv_heads, c.head_dim, s_.inv_freq.data());
    attention_forward(s_.att.data(), s_.q.data(), cache.keys(l), cache.values(l), T, pos0, cache.row_stride(), shape);
    project(l, Proj::O, L.o, x, s_.att.data(), T, /*accumulate=*/true);

    rmsnorm_forward(xn, x, L.ffn_norm.ptr<const float>(), T, D, float(c.rms_norm_eps));
    project(l, Proj::Gate, L.gate, s_.gate.data(), xn, T, false);
    project(l, Proj::Up, L.up, s_.up.data(), xn, T, false);
    swiglu_forward(s_.gate.data(), s_.gate.data(), s_.up.data(), T * I);
    project(l, Proj::Down, L.down, x, s_.gate.data(), T, /*accumulate=*/true);
  }
  cache.set_length(pos0 + T);
  const int64_t first = all_logits ? 0 : T - 1;
  const int64_t rows = T - first;
  rmsnorm_forward(xn, x + first * D, w.final_norm.ptr<const float>(), rows, D, float(c.rms_norm_eps));
  linear_forward(logits, xn, w.lm_head, nullptr, rows);
}

}  // namespace taia
