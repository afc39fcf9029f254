// The LM head and its cross-entropy fused and chunked over the vocabulary (Cut Cross-Entropy's and
// Liger's fused linear cross-entropy, on a CPU): the [rows, vocab] logits never exist, only a
// [row block, vocab chunk] tile of them, and the head's weight is read once per step.
//
// For a row x with target t, z = W x, the loss is log(sum_v exp(z_v)) - z_t and its gradient at x
// is sum_v softmax(z)_v W_v - W_t. Both come in one pass over the vocabulary chunks with the
// softmax's running maximum m and sum s (online softmax): per chunk the logits tile z = x W_c^T,
// p = exp(z - m), s += sum p, acc += p W_c, where a larger maximum first rescales s and acc by
// exp(m_old - m_new). At the end dx = scale * (acc / s - W_t), loss = log s + m - z_t.
// Same products as the unfused head (logits GEMM, then the input-gradient GEMM), so the same FLOPs;
// rows without a target (-1: prompt tokens) are left out of both products.
//
// The weight's own gradient needs the normalised softmax before it is known, so a trained head
// (and Gemma 2's final softcap) keeps the unfused path: linear_forward + cross_entropy + backward.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "kernels/linear.h"

namespace taia {

// Vocabulary rows per chunk and activation rows per block: a 512 x 512 F32 logits tile is 1 MB.
struct LinearCrossEntropyShape {
  int64_t vocab_chunk = 512;
  int64_t row_block = 512;
};

// What the fused head keeps between calls (grown, never shrunk).
struct LinearCrossEntropyScratch {
  std::vector<float> x_rows;     // [rows with a target, K] the gathered activations (when some rows have none)
  std::vector<float> acc;        // [rows with a target, K] sum_v exp(z_v - m) W_v (with dx)
  std::vector<float> tile;       // [row_block, vocab_chunk] logits, then exp(z - m)
  std::vector<float> w_chunk;    // [vocab_chunk, K] the chunk's weight rows widened to F32 (non-F32 W)
  std::vector<uint16_t> x_bf16;  // [rows with a target, K] under Precision::BF16
  std::vector<uint16_t> p_bf16;  // [row_block, vocab_chunk] under Precision::BF16
  std::vector<double> max, sum, target_logit;  // [rows with a target]
  std::vector<int32_t> targets;                // [rows with a target] their targets
  std::vector<int64_t> row_index;              // [rows with a target] their rows in x and dx
};

// Bytes of that scratch for `rows` rows with a target against W [vocab, K].
int64_t linear_cross_entropy_scratch_bytes(int64_t rows, int64_t vocab, int64_t K, DType w_dtype,
                                           Precision precision, const LinearCrossEntropyShape& shape = {});

// x [rows, K], W [vocab, K] (any dtype linear_forward multiplies; Precision::BF16: F32 or BF16 W),
// targets [rows] (-1 = no loss at this row). Returns the summed loss over rows with a target; with
// dx, adds d(loss * scale)/dx to dx [rows, K] (rows without a target get nothing).
double linear_cross_entropy(float* dx, const float* x, const TensorView& w, const int32_t* targets, int64_t rows,
                            float scale, const LinearCompute& compute, LinearCrossEntropyScratch& scratch,
                            const LinearCrossEntropyShape& shape = {});

// The online-softmax pass itself over any scalar, given the two products of a vocabulary chunk
// [v0, v0 + vc) and a weight row; the F32 kernel above and the double-precision tests share it.
template <typename T>
struct VocabChunkProducts {
  // z[rows, vc] = x[rows, K] W[v0 : v0 + vc]^T (x: rows x_first.. of the gathered activations)
  std::function<void(T* z, int64_t x_first, int64_t rows, int64_t v0, int64_t vc)> logits;
  // acc[rows, K] += p[rows, vc] W[v0 : v0 + vc]
  std::function<void(T* acc, const T* p, int64_t rows, int64_t v0, int64_t vc)> accumulate;
  // out[K] = W[v]
  std::function<void(T* out, int64_t v)> weight_row;
};

// Over the gathered rows (targets[i] in [0, vocab) for each): returns the summed loss; with dx adds
// d(loss * scale)/dx of gathered row i to dx + dx_rows[i] * K. acc [rows, K] (with dx), tile
// [row_block, vocab_chunk], max / sum / target_logit [rows] are the caller's scratch.
template <typename T>
double online_softmax_cross_entropy(T* dx, const int64_t* dx_rows, const int32_t* targets, int64_t rows,
                                    int64_t vocab, int64_t K, T scale, const VocabChunkProducts<T>& products,
                                    const LinearCrossEntropyShape& shape, T* acc, T* tile, double* max, double* sum,
                                    double* target_logit);

}  // namespace taia
