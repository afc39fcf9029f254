// Keys and values of every past position, per layer, for incremental decoding, stored as F32,
// BF16, F16 or Q8_0 (is_kv_dtype).
// A layer with a sliding window W needs only the keys of the last W positions. With
// rows_per_call > 0 such a layer keeps a ring of W - 1 + rows_per_call rows (the window of a
// call's oldest query plus the call's new rows) and slot s lives in row s % layer_rows(l);
// Decoder::forward splits longer calls. Other layers keep a row per slot.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/enum_words.h"
#include "kernels/attention.h"
#include "model/config.h"

namespace taia {

// The call size of generation's ring caches: a prompt is prefilled in calls of this many rows.
inline constexpr int64_t kGenerateRowsPerCall = 512;

// The types a cache stores keys and values in (--kv-dtype): F32 (exact), BF16, F16 (llama.cpp's
// default) or Q8_0 (blocks of 32 values: head_dim a multiple of 32). Attention reads them as
// stored (kernels/attention).
bool is_kv_dtype(DType dtype);
// --kv-dtype's words (f32, bf16, f16, q8_0) and the word of a cache type (results files).
const EnumWords<DType>& kv_dtype_words();
std::string kv_dtype_word(DType dtype);

class KVCache {
 public:
  // rows_per_call 0: every layer keeps max_positions rows (what packed batches, whose rows
  // attend to several spans, need).
  KVCache(const ModelConfig& config, int64_t max_positions, int64_t rows_per_call = 0, DType dtype = DType::F32);

  int64_t max_positions() const { return max_positions_; }
  int64_t length() const { return length_; }  // positions filled
  void set_length(int64_t n);                  // rewind (or advance after a forward pass)
  void clear() { length_ = 0; }

  DType dtype() const { return dtype_; }
  // Layer l's rows as stored: [layer_rows(l)] rows of row_bytes(), each [kv_dim] values.
  KvRows rows(int64_t layer) const;
  int64_t row_bytes() const { return row_bytes_; }
  // F32 caches: the rows of layer l as floats, [layer_rows(l), kv_dim] (new rows are written in
  // place); other types go through store().
  float* keys(int64_t layer);
  float* values(int64_t layer);
  // Writes one position's key and value rows k[kv_dim], v[kv_dim] into `row` of layer l,
  // converted to the cache's type.
  void store(int64_t layer, int64_t row, const float* k, const float* v);
  int64_t layer_rows(int64_t layer) const { return rows_[size_t(layer)]; }
  bool is_ring(int64_t layer) const { return rows_[size_t(layer)] < max_positions_; }
  bool has_rings() const { return has_rings_; }
  int64_t rows_per_call() const { return rows_per_call_; }
  // The row of layer l that holds slot s.
  int64_t row_of(int64_t layer, int64_t slot) const { return slot % rows_[size_t(layer)]; }
  // Bytes of keys and values held.
  int64_t bytes() const { return int64_t(k_.size() + v_.size()); }
  // Bytes a cache of this type holds per position and layer without rings (the memory estimates).
  static int64_t bytes_per_position(const ModelConfig& config, DType dtype);

  // The position of the token whose key and value slot s holds (what a sliding window compares).
  int64_t position(int64_t slot) const { return positions_[size_t(slot)]; }
  void set_position(int64_t slot, int64_t position) { positions_[size_t(slot)] = position; }

 private:
  int64_t max_positions_, kv_dim_, rows_per_call_, length_ = 0;
  DType dtype_;
  int64_t row_bytes_;
  bool has_rings_ = false;
  std::vector<int64_t> rows_;     // [layers] rows kept per layer
  std::vector<int64_t> offsets_;  // [layers] first row of each layer in k_ / v_
  std::vector<uint8_t> k_, v_;    // [sum of rows_, row_bytes_]
  std::vector<int64_t> positions_;  // [max_positions] by slot
};

}  // namespace taia
