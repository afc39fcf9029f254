// Numerically stable softmax over the last dimension, in place.
#pragma once
#include <cstdint>

namespace taia {

void softmax_forward(float* x, int64_t n);

}  // namespace taia
