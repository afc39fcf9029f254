#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/softmax.h"

namespace taia {
namespace {

// One query row against the rows of its key spans. HD > 0 fixes the head size at compile time
// so the dot products unroll into a few vector FMAs and one reduction; HD == 0 is the generic loop.
template <int HD>
void attend_one(float* out, const float* qh, const float* k, const float* v, const KeySpans& spans,
                int64_t kv_row_stride, int64_t hd_runtime, float scale, float* scores) {
  const int64_t hd = HD > 0 ? HD : hd_runtime;
  int64_t n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float* kj = k + j * kv_row_stride;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
      scores[n++] = dot * scale;
    }
  softmax_forward(scores, n);
  for (int64_t i = 0; i < hd; ++i) out[i] = 0.0f;
  n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float p = scores[n++];
      const float* vj = v + j * kv_row_stride;
#pragma omp simd
      for (int64_t i = 0; i < hd; ++i) out[i] += p * vj[i];
    }
}

using AttendFn = void (*)(float*, const float*, const float*, const float*, const KeySpans&, int64_t, int64_t, float,
                          float*);

AttendFn pick(int64_t hd) {
  switch (hd) {
    case 8: return attend_one<8>;
    case 16: return attend_one<16>;
    case 32: return attend_one<32>;
    case 64: return attend_one<64>;
    case 80: return attend_one<80>;
    case 96: return attend_one<96>;
    case 128: return attend_one<128>;
    case 256: return attend_one<256>;
    default: return attend_one<0>;
  }
}

}  // namespace

void attention_forward_spans(float* out, const float* q, const float* k, const float* v, const KeySpans* spans,
                             int64_t T, int64_t kv_row_stride, const AttentionShape& shape) {
  const int64_t H = shape.n_heads, hd = shape.head_dim;
  const int64_t group = H / shape.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(hd));
  const AttendFn attend = pick(hd);
  int64_t longest = 0, work = 0;
  for (int64_t t = 0; t < T; ++t) {
    longest = std::max(longest, spans[t].size());
    work += spans[t].size();
  }
  // Small problems (tiny models, short contexts) lose more to fork/join than they gain.
  const bool parallel = work * H * hd >= (int64_t(1) << 15);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(longest));  // one row of probabilities, per thread
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t kv_offset = (h / group) * hd;
        attend(out + (t * H + h) * hd, q + (t * H + h) * hd, k + kv_offset, v + kv_offset, spans[t], kv_row_stride,
               hd, scale, scores.data());
      }
    }
  }
}

void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape) {
  std::vector<KeySpans> spans(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) spans[size_t(t)].end[0] = pos0 + t + 1;
  attention_forward_spans(out, q, k, v, spans.data(), T, kv_row_stride, shape);
}

}  // namespace taia
