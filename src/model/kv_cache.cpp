#include "model/kv_cache.h"

#include "core/error.h"

namespace taia {

bool is_kv_dtype(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16 || dtype == DType::Q8_0;
}

const EnumWords<DType>& kv_dtype_words() {
  static const EnumWords<DType> words{{"f32", DType::F32}, {"bf16", DType::BF16}, {"f16", DType::F16},
                                      {"q8_0", DType::Q8_0}};
  return words;
}

std::string kv_dtype_word(DType dtype) {
  const std::string* w = word_of(kv_dtype_words(), dtype);
  TAIA_CHECK(w != nullptr, "[KVCache] expected a cache type f32, bf16, f16 or q8_0, got ", dtype_name(dtype));
  return *w;
}

namespace {

// The bytes of one row of kv_dim values; Q8_0 blocks must not straddle two heads.
int64_t checked_row_bytes(const ModelConfig& config, DType dtype) {
  TAIA_CHECK(is_kv_dtype(dtype), "[KVCache] expected a cache type f32, bf16, f16 or q8_0, got ", dtype_name(dtype));
  TAIA_CHECK(dtype != DType::Q8_0 || config.head_dim % 32 == 0, "[KVCache] a q8_0 cache stores blocks of 32 values "
             "per head: expected head_dim a multiple of 32, got ", config.head_dim, " (use --kv-dtype f16)");
  return int64_t(dtype_bytes(dtype, config.kv_dim()));
}

}  // namespace

KVCache::KVCache(const ModelConfig& config, int64_t max_positions, int64_t rows_per_call, DType dtype)
    : max_positions_(max_positions),
      kv_dim_(config.kv_dim()),
      rows_per_call_(rows_per_call),
      dtype_(dtype),
      row_bytes_(checked_row_bytes(config, dtype)) {
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
  k_.assign(size_t(total * row_bytes_), 0);
  v_.assign(size_t(total * row_bytes_), 0);
  positions_.assign(size_t(max_positions), 0);
}

int64_t KVCache::bytes_per_position(const ModelConfig& config, DType dtype) {
  return 2 * config.num_layers * checked_row_bytes(config, dtype);
}

KvRows KVCache::rows(int64_t layer) const {
  const size_t at = size_t(offsets_[size_t(layer)] * row_bytes_);
  return KvRows{k_.data() + at, v_.data() + at, dtype_, row_bytes_};
}

float* KVCache::keys(int64_t layer) {
  TAIA_CHECK(dtype_ == DType::F32, "[KVCache::keys] expected an F32 cache, this one holds ", dtype_name(dtype_));
  return reinterpret_cast<float*>(k_.data() + size_t(offsets_[size_t(layer)] * row_bytes_));
}

float* KVCache::values(int64_t layer) {
  TAIA_CHECK(dtype_ == DType::F32, "[KVCache::values] expected an F32 cache, this one holds ", dtype_name(dtype_));
  return reinterpret_cast<float*>(v_.data() + size_t(offsets_[size_t(layer)] * row_bytes_));
}

void KVCache::store(int64_t layer, int64_t row, const float* k, const float* v) {
  const size_t at = size_t((offsets_[size_t(layer)] + row) * row_bytes_);
  convert_from_f32(k, dtype_, k_.data() + at, size_t(kv_dim_));  // Q8_0: ggml's reference quantizer
  convert_from_f32(v, dtype_, v_.data() + at, size_t(kv_dim_));
}

void KVCache::set_length(int64_t n) {
  TAIA_CHECK(n >= 0 && n <= max_positions_, "[KVCache::set_length] expected 0..", max_positions_, ", got ", n);
  length_ = n;
}

}  // namespace taia
