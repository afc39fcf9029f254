#include "kernels/geglu.h"

#include <cmath>

namespace taia {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kCubic = 0.044715;

template <typename T>
inline T gelu_tanh(T x) {
  return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x)));
}

// d gelu_tanh / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <typename T>
inline T gelu_tanh_grad(T x) {
  const T t = std::tanh(T(kSqrt2OverPi) * (x + T(kCubic) * x * x * x));
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kCubic) * x * x);
}

}  // namespace

void geglu_forward(float* h, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = gelu_tanh(gate[i]) * up[i];
}

template <typename T>
void geglu_train_forward(T* h, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = gelu_tanh(gate[i]) * up[i];
}

template <typename T>
void geglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    dgate[i] += dh[i] * up[i] * gelu_tanh_grad(gate[i]);
    dup[i] += dh[i] * gelu_tanh(gate[i]);
  }
}

#define TAIA_INSTANTIATE(T)                                                         \
  template void geglu_train_forward<T>(T*, const T*, const T*, int64_t);            \
  template void geglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
