// BF16 x BF16 -> F32 matrix products through oneDNN's matmul primitive (about twice the F32
// rate on AVX-512 BF16 hardware). Used only where the caller accepts activations rounded to
// BF16 (opt-in mixed-precision training); every default path stays F32.
#pragma once
#include <cstdint>

namespace taia {

// C[M,N] (+)= A[M,K] B[K,N]; A row-major bf16 with row stride lda; B given either as W[N,K]
// row-major (b_is_nk: B = W^T, the linear-layer layout) or as W[K,N] row-major; C f32, ldc.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* W, int64_t ldw,
               bool b_is_nk, float* C, int64_t ldc, bool accumulate);

}  // namespace taia
