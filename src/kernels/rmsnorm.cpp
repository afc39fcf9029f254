#include "kernels/rmsnorm.h"

#include <cmath>
#include <vector>

namespace taia {

void rmsnorm_forward(float* y, const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                     float weight_offset) {
#pragma omp parallel for schedule(static) if (rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float rstd = 1.0f / std::sqrt(ss / float(dim) + eps);
    if (weight_offset == 0.0f) {
      for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * rstd);
    } else {
      for (int64_t i = 0; i < dim; ++i) yr[i] = (weight_offset + weight[i]) * (xr[i] * rstd);
    }
  }
}

template <typename T>
void rmsnorm_train_forward(T* y, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, T eps,
                           T weight_offset) {
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    T ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const T s = T(1) / std::sqrt(ss / T(dim) + eps);
    rstd[r] = s;
    T* yr = y + r * dim;
    if (weight_offset == T(0)) {
      for (int64_t i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * s);
    } else {
      for (int64_t i = 0; i < dim; ++i) yr[i] = (weight_offset + weight[i]) * (xr[i] * s);
    }
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dy, const T* x, const T* weight, const T* rstd, int64_t rows,
                      int64_t dim, T weight_offset) {
  // With an offset the effective weight is (offset + weight), formed once.
  std::vector<T> effective;
  if (weight_offset != T(0)) {
    effective.resize(size_t(dim));
    for (int64_t i = 0; i < dim; ++i) effective[size_t(i)] = weight_offset + weight[i];
  }
  const T* w = weight_offset != T(0) ? effective.data() : weight;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    const T* dyr = dy + r * dim;
    const T s = rstd[r];
    // dx = s * (w*dy - xhat * mean(w*dy*xhat)), xhat = x*s
    T dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += w[i] * dyr[i] * xr[i] * s;
    dot /= T(dim);
    T* dxr = dx + r * dim;
    for (int64_t i = 0; i < dim; ++i) dxr[i] += s * (w[i] * dyr[i] - xr[i] * s * dot);
  }
  if (dweight) {
    // Column sums: parallel over features so no two threads write the same dweight[i].
#pragma omp parallel for schedule(static) if (dim > 64)
    for (int64_t i = 0; i < dim; ++i) {
      T acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += dy[r * dim + i] * x[r * dim + i] * rstd[r];
      dweight[i] += acc;
    }
  }
}

#define TAIA_INSTANTIATE(T)                                                                               \
  template void rmsnorm_train_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T, T);             \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
