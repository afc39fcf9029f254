// Storage types for tensors: F32, F16, BF16, and ggml's quantized block types (GGUF weights kept
// as stored: a row of K values is K / block_values blocks; core/ggml_quants has their layouts),
// and their conversions to and from F32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace taia {

enum class DType : uint8_t { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };

// Bytes per element of an element type; 0 for a block type (use dtype_bytes).
size_t dtype_size(DType dtype);
bool is_block_dtype(DType dtype);
// Bytes of n values (a block type: n a multiple of its block's values, else throws).
size_t dtype_bytes(DType dtype, int64_t n);
const char* dtype_name(DType dtype);  // "F32", "F16", "BF16" (safetensors spelling), "Q4_K", ...
// Parses "F32"/"f32"/"float32", "F16"/"f16"/"float16", "BF16"/"bf16"/"bfloat16"; throws otherwise.
DType parse_dtype(const std::string& name);
bool try_parse_dtype(const std::string& name, DType* out);
// A --dtype choice as its option word: "auto" (nullopt: as stored), "f32", "bf16", "f16", ...
std::string dtype_option_word(const std::optional<DType>& dtype);

inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as PyTorch's float -> bfloat16 cast; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return uint16_t((u + rounding) >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

// Converts n elements of any storage type to F32 (block types: dequantized) / from F32 (the
// block types taia writes: quantized by ggml's reference quantizers; the others refused).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);
void convert_from_f32(const float* src, DType dst_type, void* dst, size_t n);

}  // namespace taia
