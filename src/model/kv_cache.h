// Keys and values of every past position, per layer, for incremental decoding.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace taia {

class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t max_positions);

  int64_t max_positions() const { return max_positions_; }
  int64_t length() const { return length_; }  // positions filled
  void set_length(int64_t n);                  // rewind (or advance after a forward pass)
  void clear() { length_ = 0; }

  // [max_positions, kv_dim] rows of layer l.
  float* keys(int64_t layer) { return k_.data() + layer * max_positions_ * kv_dim_; }
  float* values(int64_t layer) { return v_.data() + layer * max_positions_ * kv_dim_; }
  int64_t row_stride() const { return kv_dim_; }

 private:
  int64_t max_positions_, kv_dim_, length_ = 0;
  std::vector<float> k_, v_;  // [layers, max_positions, kv_dim]
};

}  // namespace taia
