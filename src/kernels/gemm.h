// The general matrix products every op builds on, all through oneDNN: `sgemm` (dnnl_sgemm, any
// transposes and strides: attention blocks, LoRA branches, weight gradients) and `gemm_f32` /
// `gemm_bf16` (the matmul primitive, its brgemm kernels, JIT-compiled once per shape and kept).
// Linear layers (y = x W^T, by rows and precision) go through kernels/linear.h, which routes to
// these.
//
// The matmul primitive: BF16 x BF16 -> F32 runs at about twice the F32 rate on AVX-512 BF16 hardware
// and is used only where the caller accepts activations rounded to BF16 (opt-in mixed-precision
// training). The F32 form computes the product dnnl_sgemm computes (not always with the same
// rounding: the two block the reduction differently), 5-20 % faster on the training shapes
// (M = batch x time rows); kernels/linear uses it for every F32 product of more than 8 rows.
#pragma once
#include <cstdint>

namespace taia {

// Row-major SGEMM: C[M,N] = alpha * op(A) @ op(B) + beta * C, op = transpose if trans_*.
// lda/ldb/ldc are row strides in elements.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// C[M,N] (+)= A[M,K] B[K,N]; A row-major bf16 with row stride lda; B given either as W[N,K]
// row-major (b_is_nk: B = W^T, the linear-layer layout) or as W[K,N] row-major; C f32, ldc.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* W, int64_t ldw,
               bool b_is_nk, float* C, int64_t ldc, bool accumulate);

// The same with F32 A and W.
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw,
              bool b_is_nk, float* C, int64_t ldc, bool accumulate);

}  // namespace taia
