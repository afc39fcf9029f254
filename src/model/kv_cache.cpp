#include "model/kv_cache.h"

#include "core/error.h"

namespace taia {

KVCache::KVCache(const ModelConfig& config, int64_t max_positions, int64_t rows_per_call)
    : max_positions_(max_positions), kv_dim_(config.kv_dim()), rows_per_call_(rows_per_call) {
  TAIA_CHECK(max_positions > 0, "[KVCache] expected max_positions > 0, got ", max_positions);
  TAIA_CHECK(rows_per_call >= 0, "[KVCache] expected rows_per_call >= 0, got ", rows_per_call);
  int64_t total = 0;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const int64_t window = config.layer_window(l);
    int64_t rows = max_positions;
    if (rows_per_call > 0 && window > 0 && window - 1 + rows_per_call < max_positions) {
      rows = window - 1 + rows_per_call;
      has_rings_ = true;
    }
    rows_.push_back(rows);
    offsets_.push_back(total);
    total += rows;
  }
  k_.assign(size_t(total * kv_dim_), 0.0f);
  v_.assign(size_t(total * kv_dim_), 0.0f);
  positions_.assign(size_t(max_positions), 0);
}

void KVCache::set_length(int64_t n) {
  TAIA_CHECK(n >= 0 && n <= max_positions_, "[KVCache::set_length] expected 0..", max_positions_, ", got ", n);
  length_ = n;
}

}  // namespace taia
