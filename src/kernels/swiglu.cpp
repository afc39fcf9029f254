#include "kernels/swiglu.h"

#include <cmath>

#include "kernels/fast_math.h"

namespace taia {

void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    h[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_train_forward(T* h, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = gate[i] / (T(1) + exp_t(-gate[i])) * up[i];
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + exp_t(-gate[i]));
    const T silu = gate[i] * sig;
    dgate[i] += dh[i] * up[i] * sig * (T(1) + gate[i] * (T(1) - sig));
    dup[i] += dh[i] * silu;
  }
}

#define TAIA_INSTANTIATE(T)                                                           \
  template void swiglu_train_forward<T>(T*, const T*, const T*, int64_t);             \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
