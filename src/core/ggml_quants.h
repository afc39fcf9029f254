// The block formats of ggml's quantized tensors and their dequantization to F32, bit for bit as
// llama.cpp's reference (gguf-py's numpy `dequantize`) computes it: every block holds F16 scales
// (and minimums) and packed integer quants; a value is d * q (Q4_0, Q5_0, Q8_0, Q3_K, Q6_K) or
// d * q + m (Q4_1, Q5_1) or d * q - m (Q2_K, Q4_K, Q5_K), each product and sum rounded to F32 on
// its own (this file is compiled without floating-point contraction).
//
// Blocks (bytes): Q4_0 32 values in 18, Q4_1 32 in 20, Q5_0 32 in 22, Q5_1 32 in 24, Q8_0 32 in
// 34; K-quants 256 values: Q2_K 84, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210.
#pragma once
#include <cstdint>
#include <optional>

#include "core/dtype.h"

namespace taia {

// The storage type of a ggml type id (F32 0, F16 1, Q4_0 2, ..., Q6_K 14, BF16 30), if taia
// reads it.
std::optional<DType> dtype_of_ggml_type(uint32_t ggml_type);
uint32_t ggml_type_of(DType dtype);

// Values per block and bytes per block of a block type (1 and the element size otherwise).
int64_t block_values(DType dtype);
int64_t block_bytes(DType dtype);

// Dequantizes n values (a multiple of block_values) from consecutive blocks into out[n].
void dequantize_blocks(DType dtype, const uint8_t* blocks, float* out, int64_t n);

// Whether quantize_blocks writes a type (every block type here), with ggml's reference
// quantizers (quantize_row_*_ref, no importance matrix: what llama-quantize runs without
// --imatrix).
bool can_quantize(DType dtype);
// Quantizes n values (a multiple of block_values) into consecutive blocks.
void quantize_blocks(DType dtype, const float* in, uint8_t* blocks, int64_t n);

// Q4_K / Q5_K: the six-bit scale and minimum of sub-block `sub` (0..7) from the block's 12
// packed bytes.
void k_quant_scale_min(const uint8_t* scales, int sub, int& scale, int& min);

// The dequantizer of one block of a block type (out[block_values]), for kernels that widen
// blocks one at a time; null for element types.
using DequantizeBlockFn = void (*)(const uint8_t* block, float* out);
DequantizeBlockFn block_dequantizer(DType dtype);

}  // namespace taia
