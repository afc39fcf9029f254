// Products of F32 activations with GGUF block-quantized weights (core/ggml_quants), for the
// decode path of kernels/linear: every block of a weight row is widened to F32 once (a stack
// buffer that stays in L1) and multiplied with each of the M <= kMatvecMaxRows activation rows,
// so a call reads the weights once, at their quantized size.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace taia {

// y[M, N] (+)= x[M, K] W[N, K]^T (+ bias[N]) for a block-type W.
void quant_matvec(float* y, const float* x, const TensorView& w, const float* bias, int64_t M, bool accumulate);

}  // namespace taia
