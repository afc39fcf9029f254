// Logit soft-capping (Gemma 2: attention scores and final logits): y = cap * tanh(x / cap),
// which bounds |y| < cap smoothly. In place, with the backward from the capped values:
// dy/dx = 1 - (y / cap)^2.
#pragma once
#include <cstdint>

namespace taia {

// x[n] -> cap * tanh(x / cap), in place (no threads below 64K values, so it can run on one
// attention row inside a parallel region). Templated on the scalar (double in the gradient checks).
template <typename T>
void softcap_forward(T* x, int64_t n, T cap);

// dx[n] += dy * (1 - (y / cap)^2), y the capped values softcap_forward left.
template <typename T>
void softcap_backward(T* dx, const T* dy, const T* y, int64_t n, T cap);
// The same in place: d[n] (the gradient at the capped values) becomes the gradient at the inputs.
template <typename T>
void softcap_backward_inplace(T* d, const T* y, int64_t n, T cap);

}  // namespace taia
