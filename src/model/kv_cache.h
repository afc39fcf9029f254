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
  // The position of the token whose key and value a row holds (what a sliding window compares).
  int64_t position(int64_t row) const { return positions_[size_t(row)]; }
  void set_position(int64_t row, int64_t position) { positions_[size_t(row)] = position; }

 private:
  int64_t max_positions_, kv_dim_, length_ = 0;
  std::vector<float> k_, v_;        // [layers, max_positions, kv_dim]
  std::vector<int64_t> positions_;  // [max_positions]
};

}  // namespace taia
