// GeGLU gating of the Gemma MLP: h = gelu_tanh(gate) * up, with GELU's tanh approximation
// (HF's `gelu_pytorch_tanh`: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))). The inference
// forward, the training forward and its backward, with swiglu's names: gate, up, h, dgate, dup,
// dh [n].
#pragma once
#include <cstdint>

namespace taia {

// Inference (libm's tanhf). h may alias gate or up.
void geglu_forward(float* h, const float* gate, const float* up, int64_t n);

// Training; templated on the scalar (double in the gradient checks).
template <typename T>
void geglu_train_forward(T* h, const T* gate, const T* up, int64_t n);
// dgate += dh * up * gelu'(gate), dup += dh * gelu(gate).
template <typename T>
void geglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n);

}  // namespace taia
