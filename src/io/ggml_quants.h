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

namespace taia {

// Whether dequantize_blocks handles a ggml type (F32 / F16 / BF16 are not block formats).
bool is_dequantizable_block_type(uint32_t ggml_type);

// Values per block and bytes per block of a block type (0 if it is not one).
int64_t block_values(uint32_t ggml_type);
int64_t block_bytes(uint32_t ggml_type);

// Dequantizes n values (a multiple of block_values) from consecutive blocks into out[n].
void dequantize_blocks(uint32_t ggml_type, const uint8_t* blocks, float* out, int64_t n);

}  // namespace taia
