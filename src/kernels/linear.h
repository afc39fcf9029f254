// Linear layers, y = x W^T (+ b) with W [out_features, in_features] in PyTorch's layout, F32 or
// BF16: the one router that the decoder and the training engine both call, and its backward.
//
// Routing, by rows (M) and compute precision:
//   Precision::BF16 (opt-in: mixed-precision training, --compute bf16 inference): activations
//                       rounded to BF16, the weight in BF16 (F32 weights converted once, kept in a
//                       Bf16Workspace), oneDNN's BF16 matmul primitive (kernels/gemm.h), F32
//                       accumulation; M <= kMatvecMaxRows on BF16 weights: the same products
//                       (rounded activations, F32 sums) through the matrix-vector kernel;
//   M <= kMatvecMaxRows (decode): the AVX-512 matrix-vector kernel, weights streamed once
//                       (memory bound), BF16 widened in registers; block-quantized weights with
//                       LinearCompute::int8_activations: integer dot products (kernels/quant_dot);
//   Q4_0 / Q8_0 with int8_activations and LinearCompute::packed, any M: the 16-row repacked
//                       weights' integer products (kernels/quant_packed), decode and prefill;
//   larger M, F32 W:    oneDNN's F32 matmul primitive (brgemm);
//   larger M, BF16 W:   widened to F32 in blocks of 256 rows, dnnl_sgemm per block, so the
//                       activations are never rounded (the logits of an F32 computation on the
//                       BF16-valued weights); F16 and block-quantized W the same way (quantized
//                       with int8_activations: the activations rounded to their 8-bit values).
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "core/enum_words.h"
#include "core/tensor.h"
#include "kernels/quant_packed.h"

namespace taia {

// Rows up to which a product is a matrix-vector product (decode, small batches of rows): below
// it a GEMM library's packing dominates and the weights are best streamed once for all rows.
constexpr int64_t kMatvecMaxRows = 8;

enum class Precision { F32, BF16 };
const char* precision_name(Precision p);  // "f32", "bf16": --compute's words
const EnumWords<Precision>& precision_words();  // the words and their values (CLI and public API)

// What the BF16 path keeps between calls: BF16 copies of F32 weights (by address: the weights
// must not change while it is alive, so it serves frozen weights only) and one activation buffer.
class Bf16Workspace {
 public:
  const uint16_t* weight(const TensorView& w);        // BF16 weights as they are, F32 converted once
  const uint16_t* activations(const float* x, int64_t n);  // x[n] rounded to BF16 (reused buffer)
  const float* rounded(const float* x, int64_t n);         // x[n] rounded to BF16 values, kept as F32

 private:
  std::map<const void*, std::vector<uint16_t>> weights_;
  std::vector<uint16_t> activations_;
  std::vector<float> rounded_;
};

struct LinearCompute {
  Precision precision = Precision::F32;
  Bf16Workspace* bf16 = nullptr;  // required with Precision::BF16
  // Block-quantized weights: activations quantized to 8 bits per block (kernels/quant_dot,
  // llama.cpp's semantics), instead of exact F32 activations against widened weights. Decode rows
  // (M <= kMatvecMaxRows) run integer dot products; prefill rows multiply the widened F32 tiles
  // with the activations rounded to those 8-bit values (the same products). Inference turns it
  // on unless --exact-activations; training keeps it off (its backward is exact).
  bool int8_activations = false;
  // With int8_activations: Q4_0 / Q8_0 weights repacked 16 rows at a time (kernels/quant_packed)
  // for decode and prefill rows alike, kept here (the model's cache; null: the file's layout);
  // `mapping` the file the weights may be used in place from (their pages leave once packed).
  PackedQuantCache* packed = nullptr;
  const MappedFile* mapping = nullptr;
  // Profiling: the wall time of widening BF16, F16 or block-quantized weight tiles to F32 (for the
  // F32 GEMMs on them) is added here; null: no clock is read.
  double* widen_seconds = nullptr;
};

// Weight rows [n0, n0 + rows) of W [N, K] as F32 into out [rows, K] (any dtype linear_forward
// takes; parallel over the values), timed into compute.widen_seconds when set.
void widen_weight_rows(const TensorView& w, int64_t n0, int64_t rows, float* out, const LinearCompute& compute = {});

// y[M, N] = x[M, K] @ W[N, K]^T (+ bias[N]) ; if accumulate, y += instead of y =.
// W is F32 or BF16, contiguous [N, K]; bias may be null.
void linear_forward(float* y, const float* x, const TensorView& w, const float* bias, int64_t M,
                    bool accumulate = false, const LinearCompute& compute = {});

// One output of linear_forward_shared: y (+)= x W^T (+ bias).
struct LinearOutput {
  const TensorView* weight;
  const float* bias;  // or null
  float* y;
  bool accumulate = false;
};

// Products of one x[M, K] with several weights (q, k, v; gate, up). Decode rows (M <=
// kMatvecMaxRows) on dense weights of one dtype run as one pass over all their rows: one parallel
// region instead of one per weight, one balanced split of the rows; anything else is
// linear_forward per output. The same values as linear_forward per output.
void linear_forward_shared(const std::vector<LinearOutput>& outs, const float* x, int64_t M,
                           const LinearCompute& compute = {});

// y = x W^T through the row-streaming kernel whatever M is: for weights with few rows (LoRA's
// A [r, in]), where a GEMM library's packing dominates. Parallel over weight-row blocks.
void linear_forward_few_rows(float* y, const float* x, const TensorView& w, int64_t M);

// Plain triple loop with double accumulation: the reference the tests compare against.
void linear_forward_reference(float* y, const float* x, const TensorView& w, const float* bias, int64_t M,
                              bool accumulate = false);

// Backward of linear_forward, accumulating: dx[M,K] += dy[M,N] W (Precision::BF16: dy rounded,
// BF16 matmul primitive; F32 weights and M > kMatvecMaxRows: F32 matmul primitive; otherwise
// dnnl_sgemm, BF16 weights widened in blocks) ; dW[N,K] += dy^T x (F32, dnnl_sgemm; null for a
// frozen weight) ; db[N] += column sums of dy. Any output may be null.
void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const TensorView& w, int64_t M,
                     const LinearCompute& compute = {});

// Plain loops for the gradient checks, templated on the scalar: y[M,N] = x[M,K] W[N,K]^T (+ b);
// backward dx[M,K] += dy W, dW[N,K] += dy^T x, db[N] += column sums of dy (any may be null).
template <typename T>
void linear_train_forward_ref(T* y, const T* x, const T* W, const T* b, int64_t M, int64_t N, int64_t K);
template <typename T>
void linear_backward_ref(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t M, int64_t N, int64_t K);

}  // namespace taia
