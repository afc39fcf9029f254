#include "kernels/attention.h"

#include <cmath>
#include <vector>

#include "kernels/softmax.h"

namespace taia {

void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape) {
  const int64_t H = shape.n_heads, hd = shape.head_dim;
  const int64_t group = H / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(hd));
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + T));  // one row of probabilities, per thread
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const float* qh = q + (t * H + h) * hd;
        const int64_t kvh = h / group;
        const int64_t n_ctx = pos0 + t + 1;
        for (int64_t j = 0; j < n_ctx; ++j) {
          const float* kj = k + j * kv_row_stride + kvh * hd;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
          scores[size_t(j)] = dot * scale;
        }
        softmax_forward(scores.data(), n_ctx);
        float* oh = out + (t * H + h) * hd;
        for (int64_t i = 0; i < hd; ++i) oh[i] = 0.0f;
        for (int64_t j = 0; j < n_ctx; ++j) {
          const float p = scores[size_t(j)];
          const float* vj = v + j * kv_row_stride + kvh * hd;
#pragma omp simd
          for (int64_t i = 0; i < hd; ++i) oh[i] += p * vj[i];
        }
      }
    }
  }
}

}  // namespace taia
