// Causal grouped-query attention. Inference: queries against a key/value history (the KV
// cache), with per-row key spans for packed batches. Training: B sequences of length L, the
// probabilities saved for the backward. One set of names: q [rows, n_heads, head_dim],
// k, v [rows, n_kv_heads, head_dim], out like q; AttentionShape gives the head counts.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace taia {

struct AttentionShape {
  int64_t n_heads;     // query heads
  int64_t n_kv_heads;  // key/value heads; each serves n_heads / n_kv_heads query heads
  int64_t head_dim;
  // Sliding window (Mistral): the query at position i attends to the keys at positions
  // i - window + 1 .. i (HF's `kv_idx > q_idx - sliding_window`); 0 = every earlier position.
  // attention_forward and the training kernels apply it; attention_forward_spans takes spans
  // the caller has already trimmed (Decoder::layer_spans).
  int64_t window = 0;
  // The logits' scale (0: 1/sqrt(head_dim); Gemma 2: 1/sqrt(query_pre_attn_scalar)) and
  // soft-capping, logit -> softcap * tanh(logit / softcap) before the softmax (0: none). The
  // training backward recomputes the capped logits of a block (one more GEMM) instead of keeping
  // them beside the probabilities.
  float scale = 0.0f;
  float softcap = 0.0f;
};

// Query rows per block of the training kernels' GEMMs: smaller blocks skip more of the masked
// upper triangle, larger ones run the GEMMs closer to their peak rate. (The memory estimate of
// the training engine counts per-thread scratch in these blocks.)
inline constexpr int64_t kCausalBlock = 64;

// The first position a query at `position` attends to under `window` (0: no window).
inline int64_t window_start(int64_t position, int64_t window) {
  return window > 0 && position - window + 1 > 0 ? position - window + 1 : 0;
}

// The cache rows one query attends to: [begin[0], end[0]) followed by [begin[1], end[1]).
// Plain causal decoding uses the first span only; packed batches use the second for a shared
// prefix (several answer options after one question, several sequences in one cache).
struct KeySpans {
  int64_t begin[2] = {0, 0};
  int64_t end[2] = {0, 0};
  int64_t size() const { return (end[0] - begin[0]) + (end[1] - begin[1]); }
};

// Keys and values as a cache stores them: rows of row_bytes bytes, each [n_kv_heads, head_dim]
// values of dtype F32, BF16, F16 or Q8_0 (blocks of 32 within a head). Attention widens each row's
// head to F32 as it reads it; scores, softmax and sums stay F32.
struct KvRows {
  const void* k;
  const void* v;
  DType dtype = DType::F32;
  int64_t row_bytes = 0;
};

// q[T, n_heads, head_dim] holds the queries of positions pos0 .. pos0+T-1.
// k, v: [>= pos0+T, n_kv_heads, head_dim] rows for every position so far (row stride kv_row_stride
// floats). Query t attends to positions 0 .. pos0+t. out[T, n_heads, head_dim].
void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape);

// Query t attends to the cache rows spans[t] (each non-empty, the query's own row included by
// the caller), read as stored. q and out as attention_forward's.
void attention_forward_spans(float* out, const float* q, const KvRows& kv, const KeySpans* spans, int64_t T,
                             const AttentionShape& shape);

// Training, within each of `batch` sequences of `seq_len` rows: q [batch, seq_len, n_heads,
// head_dim], k/v [batch, seq_len, n_kv_heads, head_dim] -> out like q; probs [batch, n_heads,
// seq_len, seq_len] saved (upper triangle zero). Templated on the scalar (float in training:
// GEMMs over 64-row query blocks; double in the gradient checks: plain loops).
template <typename T>
void attention_train_forward(T* out, T* probs, const T* q, const T* k, const T* v, int64_t batch, int64_t seq_len,
                             const AttentionShape& shape);
// dq, dk, dv += the gradients for dout (same layouts as the forward).
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        int64_t batch, int64_t seq_len, const AttentionShape& shape);

}  // namespace taia
