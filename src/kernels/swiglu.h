// SwiGLU gating of the LLaMA MLP: h = silu(gate) * up. The inference forward, the training
// forward and its backward, with one set of names: gate, up, h, dgate, dup, dh [n].
#pragma once
#include <cstdint>

namespace taia {

// Inference (libm's expf). h may alias gate or up.
void swiglu_forward(float* h, const float* gate, const float* up, int64_t n);

// Training (fast_expf for float, exact exp for the double gradient checks).
template <typename T>
void swiglu_train_forward(T* h, const T* gate, const T* up, int64_t n);
// dgate += dh * up * silu'(gate), dup += dh * silu(gate).
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n);

}  // namespace taia
