// The gated MLP activation h = act(gate) * up, with its kind as a value: SwiGLU (silu, LLaMA and
// most families) or GeGLU (HF's gelu_pytorch_tanh, Gemma). One entry point per pass that the
// layer recipe (model/layer_recipe.h) calls; the math of each kind lives in swiglu.cpp / geglu.cpp.
// Names as there: gate, up, h [n]; dgate, dup += their gradients for dh [n].
#pragma once
#include <cstdint>

namespace taia {

enum class Activation { Silu, GeluTanh };
const char* activation_name(Activation a);  // HF's hidden_act: "silu", "gelu_pytorch_tanh"

// Inference: h may alias gate.
void glu_forward(Activation a, float* h, const float* gate, const float* up, int64_t n);
template <typename T>
void glu_train_forward(Activation a, T* h, const T* gate, const T* up, int64_t n);
template <typename T>
void glu_backward(Activation a, T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n);

}  // namespace taia
