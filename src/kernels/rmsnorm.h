// RMSNorm as HF's LlamaRMSNorm: y = weight * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps).
// The inference forward (F32), the training forward (saves rstd) and its backward, with one
// set of names: x, y, dx, dy [rows, dim]; weight, dweight [dim]; rstd [rows].
// Training kernels are templated on the scalar: float in training, double in the gradient
// checks (tests/unit/test_gradcheck.cpp). Backward kernels accumulate (+=) into gradients.
#pragma once
#include <cstdint>

namespace taia {

// y may alias x. weight_offset 1: Gemma's norm, y = (1 + weight) * (x * rstd).
void rmsnorm_forward(float* y, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                     float weight_offset = 0.0f);

// weight_offset as in rmsnorm_forward (1: Gemma's (1 + weight)).
template <typename T>
void rmsnorm_train_forward(T* y, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, T eps,
                           T weight_offset = T(0));

// dx += ..., dweight += ... (dweight may be null: a frozen norm). The gradient of the weight is
// the same with an offset; dx uses (offset + weight).
template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dy, const T* x, const T* weight, const T* rstd, int64_t rows,
                      int64_t dim, T weight_offset = T(0));

}  // namespace taia
