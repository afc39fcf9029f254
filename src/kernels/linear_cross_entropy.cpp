#include "kernels/linear_cross_entropy.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "core/error.h"
#include "kernels/fast_math.h"
#include "kernels/gemm.h"

namespace taia {

namespace {

// One row block's logits tile [rb, vc] against the running statistics of its rows: a larger
// maximum rescales the row's sum and acc, the tile becomes exp(z - m), its sum joins the row's,
// and the target's logit is kept when it falls in the chunk.
template <typename T>
void softmax_tile(T* tile, int64_t rb, int64_t v0, int64_t vc, int64_t K, const int32_t* targets, T* acc,
                  double* max, double* sum, double* target_logit) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rb; ++i) {
    T* z = tile + i * vc;
    T chunk_max = z[0];
    for (int64_t v = 1; v < vc; ++v) chunk_max = z[v] > chunk_max ? z[v] : chunk_max;
    if (double(chunk_max) > max[i]) {
      // exp(-inf) = 0: a row's first chunk starts its sum from nothing
      const double factor = std::exp(max[i] - double(chunk_max));
      sum[i] *= factor;
      if (acc && factor != 1.0 && max[i] > -std::numeric_limits<double>::infinity()) {
        T* a = acc + i * K;
        const T f = T(factor);
        for (int64_t k = 0; k < K; ++k) a[k] *= f;
      }
      max[i] = double(chunk_max);
    }
    const int64_t t = targets[i];
    if (t >= v0 && t < v0 + vc) target_logit[i] = double(z[t - v0]);
    const T m = T(max[i]);
    T chunk_sum = 0;
#pragma omp simd reduction(+ : chunk_sum)
    for (int64_t v = 0; v < vc; ++v) {
      z[v] = exp_t(z[v] - m);
      chunk_sum += z[v];
    }
    sum[i] += double(chunk_sum);
  }
}

}  // namespace

template <typename T>
double online_softmax_cross_entropy(T* dx, const int64_t* dx_rows, const int32_t* targets, int64_t rows,
                                    int64_t vocab, int64_t K, T scale, const VocabChunkProducts<T>& products,
                                    const LinearCrossEntropyShape& shape, T* acc, T* tile, double* max, double* sum,
                                    double* target_logit) {
  TAIA_CHECK(shape.vocab_chunk > 0 && shape.row_block > 0, "[linear_cross_entropy] expected positive chunk sizes, got ",
             shape.vocab_chunk, " x ", shape.row_block);
  for (int64_t i = 0; i < rows; ++i) {
    TAIA_CHECK(targets[i] >= 0 && targets[i] < vocab, "[linear_cross_entropy] target ", targets[i], " at row ", i,
               " expected in [0, ", vocab, ")");
    max[i] = -std::numeric_limits<double>::infinity();
    sum[i] = 0;
  }
  if (dx) std::fill(acc, acc + rows * K, T(0));
  // Vocabulary outermost: each chunk of W is read (and widened) once and serves every row block.
  for (int64_t v0 = 0; v0 < vocab; v0 += shape.vocab_chunk) {
    const int64_t vc = std::min(shape.vocab_chunk, vocab - v0);
    for (int64_t r0 = 0; r0 < rows; r0 += shape.row_block) {
      const int64_t rb = std::min(shape.row_block, rows - r0);
      products.logits(tile, r0, rb, v0, vc);
      softmax_tile(tile, rb, v0, vc, K, targets + r0, dx ? acc + r0 * K : nullptr, max + r0, sum + r0,
                   target_logit + r0);
      if (dx) products.accumulate(acc + r0 * K, tile, rb, v0, vc);
    }
  }
  double loss = 0;
#pragma omp parallel reduction(+ : loss)
  {
    std::vector<T> w_t(dx ? size_t(K) : 0);  // the target's weight row
#pragma omp for schedule(static)
    for (int64_t i = 0; i < rows; ++i) {
      loss += std::log(sum[i]) + max[i] - target_logit[i];
      if (!dx) continue;
      products.weight_row(w_t.data(), targets[i]);
      const T inv = T(double(scale) / sum[i]);
      const T* a = acc + i * K;
      T* d = dx + dx_rows[i] * K;
      for (int64_t k = 0; k < K; ++k) d[k] += inv * a[k] - scale * w_t[size_t(k)];
    }
  }
  return loss;
}

template double online_softmax_cross_entropy<float>(float*, const int64_t*, const int32_t*, int64_t, int64_t, int64_t,
                                                    float, const VocabChunkProducts<float>&,
                                                    const LinearCrossEntropyShape&, float*, float*, double*, double*,
                                                    double*);
template double online_softmax_cross_entropy<double>(double*, const int64_t*, const int32_t*, int64_t, int64_t,
                                                     int64_t, double, const VocabChunkProducts<double>&,
                                                     const LinearCrossEntropyShape&, double*, double*, double*,
                                                     double*, double*);

namespace {

// Rows with a target gathered: their indices and targets; x itself when every row has one.
const float* gather_target_rows(const float* x, const int32_t* targets, int64_t rows, int64_t vocab, int64_t K,
                                LinearCrossEntropyScratch& s) {
  s.row_index.clear();
  s.targets.clear();
  for (int64_t i = 0; i < rows; ++i)
    if (targets[i] >= 0) {
      TAIA_CHECK(targets[i] < vocab, "[linear_cross_entropy] target ", targets[i], " at row ", i, " expected in [0, ",
                 vocab, ")");
      s.row_index.push_back(i);
      s.targets.push_back(targets[i]);
    }
  const int64_t n = int64_t(s.row_index.size());
  if (n == rows) return x;
  s.x_rows.resize(size_t(n * K));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) std::copy_n(x + s.row_index[size_t(i)] * K, K, s.x_rows.data() + i * K);
  return s.x_rows.data();
}

// F32 compute: F32 W multiplied in place, any other dtype through its chunk widened once.
VocabChunkProducts<float> f32_products(const float* xs, const TensorView& w, const LinearCompute& compute,
                                       LinearCrossEntropyScratch& s, int64_t vocab_chunk) {
  const int64_t K = w.shape[1];
  const bool in_place = w.dtype == DType::F32;
  if (!in_place) s.w_chunk.resize(size_t(vocab_chunk * K));
  auto chunk = [&w, &s, &compute, K, in_place, widened = std::make_shared<int64_t>(-1)](int64_t v0, int64_t vc) {
    if (in_place) return w.ptr<const float>() + v0 * K;
    if (*widened != v0) widen_weight_rows(w, v0, vc, s.w_chunk.data(), compute);
    *widened = v0;
    return static_cast<const float*>(s.w_chunk.data());
  };
  VocabChunkProducts<float> p;
  p.logits = [=](float* z, int64_t first, int64_t rows, int64_t v0, int64_t vc) {
    gemm_f32(rows, vc, K, xs + first * K, K, chunk(v0, vc), K, /*b_is_nk=*/true, z, vc, /*accumulate=*/false);
  };
  p.accumulate = [=](float* acc, const float* prob, int64_t rows, int64_t v0, int64_t vc) {
    gemm_f32(rows, K, vc, prob, vc, chunk(v0, vc), K, /*b_is_nk=*/false, acc, K, /*accumulate=*/true);
  };
  p.weight_row = [&w, K](float* out, int64_t v) {
    convert_to_f32(w.dtype, static_cast<const char*>(w.data) + size_t(v) * dtype_bytes(w.dtype, K), out, size_t(K));
  };
  return p;
}

// BF16 compute (as linear_forward / linear_backward under Precision::BF16): the activations and
// the probabilities rounded to BF16, W in BF16, F32 accumulation; the target's row W_t the BF16 row.
VocabChunkProducts<float> bf16_products(const float* xs, int64_t rows, const TensorView& w,
                                        const LinearCompute& compute, LinearCrossEntropyScratch& s,
                                        int64_t row_block, int64_t vocab_chunk) {
  TAIA_CHECK(compute.bf16 != nullptr, "[linear_cross_entropy] expected a Bf16Workspace with Precision::BF16, got none");
  const int64_t K = w.shape[1];
  const uint16_t* wb = compute.bf16->weight(w);
  s.x_bf16.resize(size_t(rows * K));
  convert_from_f32(xs, DType::BF16, s.x_bf16.data(), s.x_bf16.size());
  s.p_bf16.resize(size_t(row_block * vocab_chunk));
  const uint16_t* xb = s.x_bf16.data();
  uint16_t* pb = s.p_bf16.data();
  VocabChunkProducts<float> p;
  p.logits = [=](float* z, int64_t first, int64_t n, int64_t v0, int64_t vc) {
    gemm_bf16(n, vc, K, xb + first * K, K, wb + v0 * K, K, /*b_is_nk=*/true, z, vc, /*accumulate=*/false);
  };
  p.accumulate = [=](float* acc, const float* prob, int64_t n, int64_t v0, int64_t vc) {
    convert_from_f32(prob, DType::BF16, pb, size_t(n * vc));
    gemm_bf16(n, K, vc, pb, vc, wb + v0 * K, K, /*b_is_nk=*/false, acc, K, /*accumulate=*/true);
  };
  p.weight_row = [=](float* out, int64_t v) { convert_to_f32(DType::BF16, wb + v * K, out, size_t(K)); };
  return p;
}

}  // namespace

double linear_cross_entropy(float* dx, const float* x, const TensorView& w, const int32_t* targets, int64_t rows,
                            float scale, const LinearCompute& compute, LinearCrossEntropyScratch& s,
                            const LinearCrossEntropyShape& shape) {
  TAIA_CHECK(w.rank() == 2 && w.is_contiguous(), "[linear_cross_entropy] expected a contiguous 2-D weight, got '",
             w.name, "' ", w.shape_string());
  const bool dense = w.dtype == DType::F32 || w.dtype == DType::BF16 || w.dtype == DType::F16;
  TAIA_CHECK(dense || is_block_dtype(w.dtype), "[linear_cross_entropy] expected an F32, BF16, F16 or "
             "block-quantized weight, got ", dtype_name(w.dtype), " for '", w.name, "'");
  const int64_t vocab = w.shape[0], K = w.shape[1];
  const float* xs = gather_target_rows(x, targets, rows, vocab, K, s);
  const int64_t n = int64_t(s.row_index.size());
  if (n == 0) return 0;
  const int64_t row_block = std::min(shape.row_block, n), vocab_chunk = std::min(shape.vocab_chunk, vocab);
  const VocabChunkProducts<float> products = compute.precision == Precision::BF16
                                                 ? bf16_products(xs, n, w, compute, s, row_block, vocab_chunk)
                                                 : f32_products(xs, w, compute, s, vocab_chunk);
  s.tile.resize(size_t(row_block * vocab_chunk));
  s.acc.resize(dx ? size_t(n * K) : 0);
  for (std::vector<double>* v : {&s.max, &s.sum, &s.target_logit}) v->resize(size_t(n));
  return online_softmax_cross_entropy<float>(dx, s.row_index.data(), s.targets.data(), n, vocab, K, scale, products,
                                             LinearCrossEntropyShape{vocab_chunk, row_block}, s.acc.data(),
                                             s.tile.data(), s.max.data(), s.sum.data(), s.target_logit.data());
}

int64_t linear_cross_entropy_scratch_bytes(int64_t rows, int64_t vocab, int64_t K, DType w_dtype,
                                           Precision precision, const LinearCrossEntropyShape& shape) {
  const int64_t rb = std::min(shape.row_block, rows), vc = std::min(shape.vocab_chunk, vocab);
  int64_t bytes = 2 * rows * K * 4;                         // x_rows, acc
  bytes += rb * vc * 4;                                     // tile
  bytes += rows * (3 * 8 + 4 + 8);                          // max, sum, target_logit; targets; row_index
  if (precision == Precision::BF16) bytes += rows * K * 2 + rb * vc * 2;  // x_bf16, p_bf16
  else if (w_dtype != DType::F32) bytes += vc * K * 4;      // w_chunk
  return bytes;
}

}  // namespace taia
