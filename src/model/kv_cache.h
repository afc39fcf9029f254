// Keys and values of every past position, per layer, for incremental decoding.
// A layer with a sliding window W needs only the keys of the last W positions. With
// rows_per_call > 0 such a layer keeps a ring of W - 1 + rows_per_call rows (the window of a
// call's oldest query plus the call's new rows) and slot s lives in row s % layer_rows(l);
// Decoder::forward splits longer calls. Other layers keep a row per slot.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace taia {

// The call size of generation's ring caches: a prompt is prefilled in calls of this many rows.
inline constexpr int64_t kGenerateRowsPerCall = 512;

class KVCache {
 public:
  // rows_per_call 0: every layer keeps max_positions rows (what packed batches, whose rows
  // attend to several spans, need).
  KVCache(const ModelConfig& config, int64_t max_positions, int64_t rows_per_call = 0);

  int64_t max_positions() const { return max_positions_; }
  int64_t length() const { return length_; }  // positions filled
  void set_length(int64_t n);                  // rewind (or advance after a forward pass)
  void clear() { length_ = 0; }

  // The rows of layer l: [layer_rows(l), kv_dim].
  float* keys(int64_t layer) { return k_.data() + offsets_[size_t(layer)] * kv_dim_; }
  float* values(int64_t layer) { return v_.data() + offsets_[size_t(layer)] * kv_dim_; }
  int64_t row_stride() const { return kv_dim_; }
  int64_t layer_rows(int64_t layer) const { return rows_[size_t(layer)]; }
  bool is_ring(int64_t layer) const { return rows_[size_t(layer)] < max_positions_; }
  bool has_rings() const { return has_rings_; }
  int64_t rows_per_call() const { return rows_per_call_; }
  // The row of layer l that holds slot s.
  int64_t row_of(int64_t layer, int64_t slot) const { return slot % rows_[size_t(layer)]; }
  // Bytes of keys and values held.
  int64_t bytes() const { return int64_t(k_.size() + v_.size()) * int64_t(sizeof(float)); }

  // The position of the token whose key and value slot s holds (what a sliding window compares).
  int64_t position(int64_t slot) const { return positions_[size_t(slot)]; }
  void set_position(int64_t slot, int64_t position) { positions_[size_t(slot)] = position; }

 private:
  int64_t max_positions_, kv_dim_, rows_per_call_, length_ = 0;
  bool has_rings_ = false;
  std::vector<int64_t> rows_;     // [layers] rows kept per layer
  std::vector<int64_t> offsets_;  // [layers] first row of each layer in k_ / v_
  std::vector<float> k_, v_;      // [sum of rows_, kv_dim]
  std::vector<int64_t> positions_;  // [max_positions] by slot
};

}  // namespace taia
