// Products of F32 activations with GGUF block-quantized weights (core/ggml_quants), for the
// decode path of kernels/linear: every block of a weight row is widened to F32 once (a stack
// buffer that stays in L1) and multiplied with each of the M <= kMatvecMaxRows activation rows,
// so a call reads the weights once, at their quantized size.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace taia {

// y[M, N] (+)= x[M, K] W[N, K]^T (+ bias[N]) for a block-type W. Every type has an AVX-512
// kernel that dequantizes 16 weights in registers (M a compile-time constant, so
// the accumulators stay in registers); every type also runs the reference path (whole blocks
// widened into a buffer), which the tests compare the kernels with.
void quant_matvec(float* y, const float* x, const TensorView& w, const float* bias, int64_t M, bool accumulate);
// Rows n0 .. n0 + rows - 1 of a block-type W [N, K] widened to F32 into out[rows, K] (the tiles
// prefill and LoRA's input gradient multiply through), by the same kernels.
void quant_widen_rows(const TensorView& w, int64_t n0, int64_t rows, float* out);
// Tests: off runs every type through the reference path.
void set_quant_fast_kernels(bool on);
bool use_fast_kernels();

}  // namespace taia
