// Matrix products. The model's linear layers store W as [out_features, in_features]
// (PyTorch layout), so the core operation is y = x W^T.
//
// Fast paths: few rows (decode) use an OpenMP matrix-vector kernel that streams the weights
// once (memory bound); many rows (prefill) call oneDNN's SGEMM. BF16 weights are widened to
// F32 block by block, so activations are never rounded: results match an F32 computation on
// the BF16-valued weights.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace taia {

// y[M, N] = x[M, K] @ W[N, K]^T (+ bias[N]) ; if accumulate, y += instead of y =.
// W is F32 or BF16, contiguous [N, K]; bias may be null.
void linear_forward(float* y, const float* x, const TensorView& w, const float* bias, int64_t M,
                    bool accumulate = false);

// y = x W^T through the row-streaming kernel whatever M is: for weights with few rows (LoRA's
// A [r, in]), where a GEMM library's packing dominates. Parallel over weight-row blocks.
void linear_forward_few_rows(float* y, const float* x, const TensorView& w, int64_t M);

// Plain triple loop with double accumulation: the reference the tests compare against.
void linear_forward_reference(float* y, const float* x, const TensorView& w, const float* bias, int64_t M,
                              bool accumulate = false);

// Backward of linear_forward, accumulating: dx[M,K] += dy[M,N] W ; dW[N,K] += dy^T x (dW must be
// F32; pass null for a frozen weight) ; db[N] += column sums of dy. Any output may be null.
// W may be F32 or BF16 (widened block by block, like the forward).
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const TensorView& w, int64_t M);

// Plain loops for the gradient checks, templated on the scalar: y[M,N] = x[M,K] W[N,K]^T (+ b);
// backward dx[M,K] += dy W, dW[N,K] += dy^T x, db[N] += column sums of dy (any may be null).
template <typename T>
void linear_train_forward_ref(T* y, const T* x, const T* W, const T* b, int64_t M, int64_t N, int64_t K);
template <typename T>
void linear_backward_ref(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t M, int64_t N, int64_t K);

}  // namespace taia
