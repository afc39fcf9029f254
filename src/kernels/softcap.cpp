#include "kernels/softcap.h"

#include <cmath>

namespace taia {

template <typename T>
void softcap_forward(T* x, int64_t n, T cap) {
  // x / cap, as HF divides (a multiplication by 1 / cap would round differently).
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

template <typename T>
void softcap_backward(T* dx, const T* dy, const T* y, int64_t n, T cap) {
  const T inv = T(1) / cap;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T t = y[i] * inv;
    dx[i] += dy[i] * (T(1) - t * t);
  }
}

template <typename T>
void softcap_backward_inplace(T* d, const T* y, int64_t n, T cap) {
  const T inv = T(1) / cap;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T t = y[i] * inv;
    d[i] *= T(1) - t * t;
  }
}

template void softcap_forward<float>(float*, int64_t, float);
template void softcap_backward_inplace<float>(float*, const float*, int64_t, float);
template void softcap_backward_inplace<double>(double*, const double*, int64_t, double);
template void softcap_forward<double>(double*, int64_t, double);
template void softcap_backward<float>(float*, const float*, const float*, int64_t, float);
template void softcap_backward<double>(double*, const double*, const double*, int64_t, double);

}  // namespace taia
