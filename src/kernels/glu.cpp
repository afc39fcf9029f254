#include "kernels/glu.h"

#include "kernels/geglu.h"
#include "kernels/swiglu.h"

namespace taia {

const char* activation_name(Activation a) { return a == Activation::GeluTanh ? "gelu_pytorch_tanh" : "silu"; }

void glu_forward(Activation a, float* h, const float* gate, const float* up, int64_t n) {
  if (a == Activation::GeluTanh)
    geglu_forward(h, gate, up, n);
  else
    swiglu_forward(h, gate, up, n);
}

template <typename T>
void glu_train_forward(Activation a, T* h, const T* gate, const T* up, int64_t n) {
  if (a == Activation::GeluTanh)
    geglu_train_forward<T>(h, gate, up, n);
  else
    swiglu_train_forward<T>(h, gate, up, n);
}

template <typename T>
void glu_backward(Activation a, T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
  if (a == Activation::GeluTanh)
    geglu_backward<T>(dgate, dup, dh, gate, up, n);
  else
    swiglu_backward<T>(dgate, dup, dh, gate, up, n);
}

#define TAIA_INSTANTIATE(T)                                                                        \
  template void glu_train_forward<T>(Activation, T*, const T*, const T*, int64_t);                 \
  template void glu_backward<T>(Activation, T*, T*, const T*, const T*, const T*, int64_t);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
