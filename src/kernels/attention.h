// Causal grouped-query attention over a key/value history (the KV cache).
#pragma once
#include <cstdint>

namespace taia {

struct AttentionShape {
  int64_t n_heads;     // query heads
  int64_t n_kv_heads;  // key/value heads; each serves n_heads / n_kv_heads query heads
  int64_t head_dim;
};

// q[T, n_heads, head_dim] holds the queries of positions pos0 .. pos0+T-1.
// k, v: [>= pos0+T, n_kv_heads, head_dim] rows for every position so far (row stride kv_row_stride
// floats). Query t attends to positions 0 .. pos0+t. out[T, n_heads, head_dim].
void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape);

}  // namespace taia
