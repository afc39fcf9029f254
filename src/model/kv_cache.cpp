#include "model/kv_cache.h"

#include "core/error.h"

namespace taia {

KVCache::KVCache(const ModelConfig& config, int64_t max_positions)
    : max_positions_(max_positions), kv_dim_(config.kv_dim()) {
  TAIA_CHECK(max_positions > 0, "[KVCache] expected max_positions > 0, got ", max_positions);
  const size_t n = size_t(config.num_layers * max_positions * kv_dim_);
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
  positions_.assign(size_t(max_positions), 0);
}

void KVCache::set_length(int64_t n) {
  TAIA_CHECK(n >= 0 && n <= max_positions_, "[KVCache::set_length] expected 0..", max_positions_, ", got ", n);
  length_ = n;
}

}  // namespace taia
