// Cross-entropy of logits against target ids, forward and backward fused (llm.c style): one
// pass leaves the loss and, in place of the logits, their gradient.
#pragma once
#include <cstdint>

namespace taia {

// logits [rows, vocab], targets [rows] (-1 = no loss at this row). Returns the summed loss over
// the rows with a target and overwrites logits with d(loss * scale)/d(logits) (rows without a
// target become zero). scale = 1 / (rows with a target) gives the gradient of the mean.
// Templated on the scalar: float in training, double in the gradient checks.
template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t rows, int64_t vocab, T scale);

}  // namespace taia
