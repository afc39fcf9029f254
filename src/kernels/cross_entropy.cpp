#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/fast_math.h"

namespace taia {

template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t rows, int64_t vocab, T scale) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* row = logits + r * vocab;
    if (targets[r] < 0) {
      for (int64_t i = 0; i < vocab; ++i) row[i] = 0;
      continue;
    }
    T mx = row[0];
    for (int64_t i = 1; i < vocab; ++i) mx = row[i] > mx ? row[i] : mx;
    const T target_logit = row[targets[r]];
    // One exp per logit: row becomes exp(logit - max), then the scaled softmax minus one-hot.
    T sum_t = 0;
#pragma omp simd reduction(+ : sum_t)
    for (int64_t i = 0; i < vocab; ++i) {
      row[i] = exp_t(row[i] - mx);
      sum_t += row[i];
    }
    const double sum = double(sum_t);
    total += std::log(sum) + double(mx) - double(target_logit);
    const T inv = T(double(scale) / sum);
    for (int64_t i = 0; i < vocab; ++i) row[i] *= inv;
    row[targets[r]] -= scale;
  }
  return total;
}

template double cross_entropy_forward_backward<float>(float*, const int32_t*, int64_t, int64_t, float);
template double cross_entropy_forward_backward<double>(double*, const int32_t*, int64_t, int64_t, double);

}  // namespace taia
