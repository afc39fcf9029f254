// RMSNorm as HF's LlamaRMSNorm: y = weight * x / sqrt(mean(x^2) + eps), computed in F32.
#pragma once
#include <cstdint>

namespace taia {

// out[rows, dim], x[rows, dim], weight[dim]. out may alias x.
void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t rows, int64_t dim, float eps);

}  // namespace taia
