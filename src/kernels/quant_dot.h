// Integer dot products of block-quantized weights with activations quantized to 8 bits per
// block, llama.cpp's semantics for a quantized file (its vec_dot types): the 32-value types
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) meet activations in blocks of 32 (llama.cpp's Q8_0 / Q8_1:
// d = max|x| / 127 rounded to F16, q = round(x / d)), the K-quants (Q2_K .. Q6_K) meet blocks of
// 256 (Q8_K: d = max / -127 of the value with the largest magnitude, q = nearest(x / d), sums
// of every 16 quants). Products are exact integer sums (u8 x s8: AVX512-VNNI vpdpbusd, or
// vpmaddubsw + vpmaddwd without VNNI), scaled to F32 once per block.
//
// This changes numbers against the F32 path (kernels/quant_matvec: weights widened, activations
// exact): the activations carry 8 bits. It is the default for decode rows on quantized weights;
// --exact-activations keeps the F32 path (kernels/linear routes).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace taia {

// Whether a block type has an integer kernel here (every block type taia reads).
bool has_quant_dot(DType weight_dtype);

// M rows of K activations quantized for weights of one block type.
struct QuantizedActivations {
  DType weight_dtype = DType::F32;
  int64_t M = 0, K = 0;
  std::vector<int8_t> q;   // [M, K] the 8-bit quants
  std::vector<float> d;    // [M, K / B] block scales (B = 32, or 256 for the K-quants)
  std::vector<float> s;    // [M, K / 32] d * (sum of the block's quants): Q4_1 / Q5_1's minimum term
  std::vector<int32_t> sums;  // [M, K / 32] the sum of each block's quants (the 32-value types)
  std::vector<int16_t> bsums;  // [M, K / 16] sums of every 16 quants (K-quants)
  // 32-value types, per pair of blocks p: [M, K / 64, 16] the two blocks' d (lanes 0-7, 8-15),
  // and for Q4_0 / Q5_0 the offset's correction -o * (sum of quants) in lanes 0 and 8 (int32).
  std::vector<float> d_lanes;
  std::vector<int32_t> offset_lanes;
};

// x[M, K] quantized for weights of `weight_dtype` (K a multiple of its block size). Reuses out's
// buffers; parallel over rows when there are many (prefill).
void quantize_activations(QuantizedActivations& out, const float* x, int64_t M, int64_t K, DType weight_dtype);

// out[M, K] = x as the integer kernels see it (d * q of its quantization for `weight_dtype`): the
// activations of prefill rows, which multiply F32 tiles of the widened weights, so that prefill
// and decode compute the same products (up to F32 rounding). Parallel over rows.
void round_activations_to_8_bits(float* out, const float* x, int64_t M, int64_t K, DType weight_dtype);

// y[M, N] (+)= xq W[N, K]^T (+ bias[N]), M <= 8, through the type's integer kernel (AVX-512;
// elsewhere the reference below).
void quant_dot_matvec(float* y, const QuantizedActivations& xq, const TensorView& w, const float* bias,
                      bool accumulate);

// The same product in double, from the exact dequantization of both sides (weights by
// core/ggml_quants, activations as d * q): what the kernels compute up to F32 rounding of their
// scale products, and the tests' reference.
void quant_dot_reference(float* y, const QuantizedActivations& xq, const TensorView& w, const float* bias,
                         bool accumulate);

}  // namespace taia
