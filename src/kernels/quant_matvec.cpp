#include "kernels/quant_matvec.h"

#include <immintrin.h>

#include <algorithm>

#include "core/error.h"
#include "core/ggml_quants.h"

namespace taia {
namespace {

constexpr int64_t kMaxRows = 8;                 // activation rows per call (the router's kMatvecMaxRows)
constexpr int64_t kMinParallelWork = 1 << 16;  // weight values below which one thread runs

#if defined(__AVX512F__)
// acc[m] += block[0..n) . x[m][0..n), n a multiple of 16 (block sizes are 32 or 256).
inline void accumulate_block(__m512* acc, const float* block, const float* x, int64_t K, int64_t M, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 wv = _mm512_loadu_ps(block + i);
    for (int64_t m = 0; m < M; ++m) acc[m] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + m * K + i), acc[m]);
  }
}
#endif

// One weight row against the M activation rows.
void row_dot(float* out, const uint8_t* row, const float* x, int64_t M, int64_t K, int64_t bv, int64_t bb,
             DequantizeBlockFn dequantize) {
  alignas(64) float block[256];
#if defined(__AVX512F__)
  __m512 acc[kMaxRows];
  for (int64_t m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += bv, ++b) {
    dequantize(row + b * bb, block);
    accumulate_block(acc, block, x + k0, K, M, bv);
  }
  for (int64_t m = 0; m < M; ++m) out[m] = _mm512_reduce_add_ps(acc[m]);
#else
  float acc[kMaxRows] = {};
  for (int64_t k0 = 0, b = 0; k0 < K; k0 += bv, ++b) {
    dequantize(row + b * bb, block);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t i = 0; i < bv; ++i) acc[m] += block[i] * x[m * K + k0 + i];
  }
  for (int64_t m = 0; m < M; ++m) out[m] = acc[m];
#endif
}

}  // namespace

void quant_matvec(float* y, const float* x, const TensorView& w, const float* bias, int64_t M, bool accumulate) {
  const DequantizeBlockFn dequantize = block_dequantizer(w.dtype);
  TAIA_CHECK(dequantize != nullptr, "[quant_matvec] expected a block-quantized weight, got ", dtype_name(w.dtype),
             " for '", w.name, "'");
  TAIA_CHECK(M >= 1 && M <= kMaxRows, "[quant_matvec] expected 1..", kMaxRows, " activation rows, got ", M);
  const int64_t N = w.shape[0], K = w.shape[1];
  const int64_t bv = block_values(w.dtype), bb = block_bytes(w.dtype);
  const int64_t row_bytes = int64_t(dtype_bytes(w.dtype, K));
  const uint8_t* rows = static_cast<const uint8_t*>(w.data);
#pragma omp parallel for schedule(static) if (N * K >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    float v[kMaxRows];
    row_dot(v, rows + n * row_bytes, x, M, K, bv, bb, dequantize);
    for (int64_t m = 0; m < M; ++m) {
      const float value = v[m] + (bias ? bias[n] : 0.0f);
      float* out = y + m * N + n;
      *out = accumulate ? *out + value : value;
    }
  }
}

}  // namespace taia
