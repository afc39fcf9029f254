// SwiGLU gating of the LLaMA MLP: h = silu(gate) * up.
#pragma once
#include <cstdint>

namespace taia {

// out[n] = silu(gate[n]) * up[n]; out may alias gate or up.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

}  // namespace taia
