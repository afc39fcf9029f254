#include "kernels/linear.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/quant_dot.h"
#include "kernels/quant_matvec.h"

namespace taia {

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "f32"; }

const EnumWords<Precision>& precision_words() {
  static const EnumWords<Precision> words{{precision_name(Precision::F32), Precision::F32},
                                          {precision_name(Precision::BF16), Precision::BF16}};
  return words;
}
namespace {

// Rows of a BF16 weight widened to F32 per SGEMM call (scratch = kWidenBlock * K floats).
constexpr int64_t kWidenBlock = 256;
// Weight elements below which a matrix-vector product stays on one thread.
constexpr int64_t kMinParallelWork = 1 << 16;

// An F16 weight element (IEEE half bits), a type of its own so that the kernels templated on
// the weight type tell it from BF16.
struct Half {
  uint16_t bits;
};
static_assert(sizeof(Half) == 2, "Half is the 2-byte F16 storage");

template <typename WT>
inline float load_w(const WT* w, int64_t i);
template <>
inline float load_w<float>(const float* w, int64_t i) { return w[i]; }
template <>
inline float load_w<uint16_t>(const uint16_t* w, int64_t i) { return bf16_to_f32(w[i]); }
template <>
inline float load_w<Half>(const Half* w, int64_t i) { return f16_to_f32(w[i].bits); }

// Dot product of an F32 row with an F32 or BF16 weight row; the compiler vectorises it.
template <typename WT>
inline float dot_row(const float* x, const WT* w, int64_t K) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t k = 0; k < K; ++k) acc += x[k] * load_w(w, k);
  return acc;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// AVX-512: BF16 is widened in registers (zero-extend to 32 bits, shift left 16), F16 by the
// hardware conversion, so decode streams the weights in their storage at memory speed.
inline __m512 load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline __m512 load16(const uint16_t* p, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// F16 widened by the hardware conversion (vcvtph2ps).
inline __m512 load16(const Half* p, __mmask16 mask) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p)); }

// Dot product of x[K] with one weight row, four independent accumulators of 16 lanes. One row
// at a time keeps one sequential stream per thread, which the hardware prefetcher follows best:
// on the 2-vCPU EPYC test machine a Qwen2.5-0.5B-shaped decode step's weights stream at ~80 GB/s
// (F32) and ~66 GB/s (BF16, F16) this way, against ~67 and 44-50 GB/s with eight interleaved row
// streams and software prefetching (2026-11-30, interleaved runs of each layout).
template <typename WT>
inline float dot_row_stream(const float* x, const WT* w, int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const __mmask16 all = __mmask16(0xffff);
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), load16(w + k, all), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), load16(w + k + 16, all), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), load16(w + k + 32, all), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), load16(w + k + 48, all), a3);
  }
  for (; k + 16 <= K; k += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), load16(w + k, all), a0);
  if (k < K) {
    const __mmask16 mask = __mmask16((1u << (K - k)) - 1);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + k), load16(w + k, mask), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

#else
// Portable version: the compiler vectorises the inner reduction.
template <typename WT>
inline float dot_row_stream(const float* x, const WT* w, int64_t K) {
  return dot_row(x, w, K);
}
#endif

// One output of a matrix-vector pass: y[M, N] = (y +) x W^T (+ bias), W [N, K] of type WT.
struct MatvecOut {
  const void* w;
  const float* bias;  // [N] or null
  float* y;
  int64_t N;
  bool accumulate;
};

// The outputs' rows, one after the other, split statically across the threads: one parallel
// region for products sharing x (q, k, v), each thread one contiguous run of rows (one stream
// from memory). Tiny matrices (stories260K) run on one thread: cheaper than a fork/join.
template <typename WT>
void matvec_group(const MatvecOut* outs, int n_outs, const float* x, int64_t M, int64_t K) {
  int64_t total = 0;
  for (int i = 0; i < n_outs; ++i) total += outs[i].N;
#pragma omp parallel for schedule(static) if (total * K >= kMinParallelWork)
  for (int64_t r = 0; r < total; ++r) {
    int i = 0;
    int64_t n = r;
    while (n >= outs[i].N) n -= outs[i++].N;
    const MatvecOut& o = outs[i];
    const WT* wn = static_cast<const WT*>(o.w) + n * K;
    for (int64_t m = 0; m < M; ++m) {  // rows of x after the first find the weight row in L1
      const float value = dot_row_stream(x + m * K, wn, K) + (o.bias ? o.bias[n] : 0.0f);
      float* out = o.y + m * o.N + n;
      *out = o.accumulate ? *out + value : value;
    }
  }
}

template <typename WT>
void matvec_rows(float* y, const float* x, const WT* w, const float* bias, int64_t M, int64_t N, int64_t K,
                 bool accumulate) {
  const MatvecOut out{w, bias, y, N, accumulate};
  matvec_group<WT>(&out, 1, x, M, K);
}

bool is_dense(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

// out[M, N] = x[M, K] W[N, K]^T for small N (<= 64): parallel over rows of x, every weight row
// reused from cache.
void few_rows_parallel_over_m(float* y, const float* x, const float* w, int64_t M, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) y[m * N + n] = dot_row(x + m * K, w + n * K, K);
  }
}

void add_bias_rows(float* y, const float* bias, int64_t M, int64_t N) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) y[m * N + n] += bias[n];
}

// F16 -> F32 for n values, 16 at a time by the hardware conversion where there is one.
void widen_f16(const Half* src, float* dst, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, mask, load16(src + i, mask));
  }
#else
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = load_w(src, i);
#endif
}

}  // namespace

void widen_weight_rows(const TensorView& w, int64_t n0, int64_t rows, float* out, const LinearCompute& compute) {
  const auto t0 = compute.widen_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  const int64_t K = w.shape[1];
  if (w.dtype == DType::BF16) {
    const uint16_t* src = w.ptr<const uint16_t>() + n0 * K;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows * K; ++i) out[i] = bf16_to_f32(src[i]);
  } else if (w.dtype == DType::F16) {
    widen_f16(w.ptr<const Half>() + n0 * K, out, rows * K);
  } else if (w.dtype == DType::F32) {
    std::copy_n(w.ptr<const float>() + n0 * K, rows * K, out);
  } else {
    quant_widen_rows(w, n0, rows, out);
  }
  if (compute.widen_seconds)
    *compute.widen_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

namespace {

// Calls fn(first_row, rows, rows_as_f32) for blocks of kWidenBlock rows of a BF16 or
// block-quantized weight [N, K], so F32 GEMMs can run on it without a full F32 copy and without
// rounding the activations.
template <typename Fn>
void for_each_widened_block(const TensorView& w, const LinearCompute& compute, Fn fn) {
  const int64_t N = w.shape[0], K = w.shape[1];
  std::vector<float> block(static_cast<size_t>(std::min(kWidenBlock, N) * K));
  for (int64_t n0 = 0; n0 < N; n0 += kWidenBlock) {
    const int64_t nb = std::min(kWidenBlock, N - n0);
    widen_weight_rows(w, n0, nb, block.data(), compute);
    fn(n0, nb, block.data());
  }
}

void check_linear_args(const TensorView& w, const char* where) {
  TAIA_CHECK(w.rank() == 2 && w.is_contiguous(), "[", where, "] expected a contiguous 2-D weight, got '", w.name,
             "' ", w.shape_string());
  TAIA_CHECK(is_dense(w.dtype) || is_block_dtype(w.dtype), "[",
             where, "] expected an F32, BF16, F16 or block-quantized weight, got ", dtype_name(w.dtype), " for '",
             w.name, "'");
}

}  // namespace

const uint16_t* Bf16Workspace::weight(const TensorView& w) {
  if (w.dtype == DType::BF16) return w.ptr<const uint16_t>();
  TAIA_CHECK(w.dtype == DType::F32, "[Bf16Workspace] BF16 compute multiplies F32 or BF16 weights; '", w.name, "' is ",
             dtype_name(w.dtype), " (F16 and quantized weights multiply through F32 tiles: compute in F32)");
  auto it = weights_.find(w.data);
  if (it == weights_.end()) {
    std::vector<uint16_t> b(size_t(w.numel()));
    convert_from_f32(w.ptr<const float>(), DType::BF16, b.data(), b.size());
    it = weights_.emplace(w.data, std::move(b)).first;
  }
  return it->second.data();
}

const float* Bf16Workspace::rounded(const float* x, int64_t n) {
  rounded_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) rounded_[size_t(i)] = bf16_to_f32(f32_to_bf16(x[i]));
  return rounded_.data();
}

const uint16_t* Bf16Workspace::activations(const float* x, int64_t n) {
  activations_.resize(size_t(n));
  convert_from_f32(x, DType::BF16, activations_.data(), activations_.size());
  return activations_.data();
}

namespace {

Bf16Workspace& bf16_workspace(const LinearCompute& compute, const char* where) {
  TAIA_CHECK(compute.bf16 != nullptr, "[", where, "] expected a Bf16Workspace with Precision::BF16, got none");
  return *compute.bf16;
}

// Whether decode rows (M <= kMatvecMaxRows) on weights of this dtype run the streaming kernel:
// dense weights, and under Precision::BF16 only BF16 ones (their products with BF16-rounded
// activations are exact in F32, what the BF16 matmul gives).
bool streams(DType dtype, int64_t M, const LinearCompute& compute) {
  return M <= kMatvecMaxRows && is_dense(dtype) && (compute.precision == Precision::F32 || dtype == DType::BF16);
}

// The streaming kernel over outputs of one dense dtype that share x (see streams()).
void dense_matvec(const MatvecOut* outs, int n, const float* x, int64_t M, int64_t K, DType dtype,
                  const LinearCompute& compute, const char* where) {
  if (compute.precision == Precision::BF16)
    matvec_group<uint16_t>(outs, n, bf16_workspace(compute, where).rounded(x, M * K), M, K);
  else if (dtype == DType::F32)
    matvec_group<float>(outs, n, x, M, K);
  else if (dtype == DType::BF16)
    matvec_group<uint16_t>(outs, n, x, M, K);
  else
    matvec_group<Half>(outs, n, x, M, K);
}

// Whether decode rows on weights of this dtype quantize their activations (LinearCompute).
bool quantizes_activations(DType dtype, const LinearCompute& compute) {
  return compute.int8_activations && has_quant_dot(dtype);
}

// x[M, K] quantized for `dtype` into a buffer kept per thread (decode calls this per projection).
const QuantizedActivations& quantized_activations(const float* x, int64_t M, int64_t K, DType dtype) {
  thread_local QuantizedActivations xq;
  quantize_activations(xq, x, M, K, dtype);
  return xq;
}

// The repacked copy of w when its products run on it (LinearCompute::packed), else null.
const PackedQuantWeight* packed_weight(const TensorView& w, const LinearCompute& compute) {
  if (!compute.packed || !quantizes_activations(w.dtype, compute) || !has_packed_quant(w.dtype)) return nullptr;
  return &compute.packed->get(w, compute.mapping);
}

// Prefill rows x[M, K] as the integer kernels see them (a buffer kept per thread).
const float* rounded_to_8_bits(const float* x, int64_t M, int64_t K, DType dtype) {
  thread_local std::vector<float> rounded;
  rounded.resize(size_t(M * K));
  round_activations_to_8_bits(rounded.data(), x, M, K, dtype);
  return rounded.data();
}

}  // namespace

void linear_forward(float* y, const float* x, const TensorView& w, const float* bias, int64_t M, bool accumulate,
                    const LinearCompute& compute) {
  check_linear_args(w, "linear_forward");
  const int64_t N = w.shape[0], K = w.shape[1];
  if (M <= 0) return;
  if (const PackedQuantWeight* packed = packed_weight(w, compute)) {
    packed_quant_matmul(y, quantized_activations(x, M, K, w.dtype), *packed, bias, accumulate);
    return;
  }
  if (streams(w.dtype, M, compute)) {
    const MatvecOut out{w.data, bias, y, N, accumulate};
    dense_matvec(&out, 1, x, M, K, w.dtype, compute, "linear_forward");
    return;
  } else if (compute.precision == Precision::BF16) {
    Bf16Workspace& ws = bf16_workspace(compute, "linear_forward");
    gemm_bf16(M, N, K, ws.activations(x, M * K), K, ws.weight(w), K, /*b_is_nk=*/true, y, N, accumulate);
  } else if (M <= kMatvecMaxRows) {
    if (quantizes_activations(w.dtype, compute))
      quant_dot_matvec(y, quantized_activations(x, M, K, w.dtype), w, bias, accumulate);
    else
      quant_matvec(y, x, w, bias, M, accumulate);
    return;
  } else if (w.dtype == DType::F32) {
    gemm_f32(M, N, K, x, K, w.ptr<const float>(), K, /*b_is_nk=*/true, y, N, accumulate);
  } else {
    const float* xs = quantizes_activations(w.dtype, compute) ? rounded_to_8_bits(x, M, K, w.dtype) : x;
    const float beta = accumulate ? 1.0f : 0.0f;
    for_each_widened_block(w, compute, [&](int64_t n0, int64_t nb, const float* block) {
      sgemm(false, true, M, nb, K, 1.0f, xs, K, block, K, beta, y + n0, N);
    });
  }
  if (bias) add_bias_rows(y, bias, M, N);
}

void linear_forward_shared(const std::vector<LinearOutput>& outs, const float* x, int64_t M,
                           const LinearCompute& compute) {
  TAIA_CHECK(!outs.empty(), "[linear_forward_shared] expected at least one output");
  const TensorView& w0 = *outs[0].weight;
  check_linear_args(w0, "linear_forward_shared");
  const int64_t K = w0.shape[1];
  bool same = true;  // one dtype and one K: the outputs can run as one pass over x
  for (const LinearOutput& o : outs) {
    check_linear_args(*o.weight, "linear_forward_shared");
    same = same && o.weight->dtype == w0.dtype && o.weight->shape[1] == K;
  }
  const bool grouped = same && M > 0 && streams(w0.dtype, M, compute);
  if (same && M > 0 && packed_weight(w0, compute)) {
    const QuantizedActivations& xq = quantized_activations(x, M, K, w0.dtype);  // once for all outputs
    for (const LinearOutput& o : outs) packed_quant_matmul(o.y, xq, *packed_weight(*o.weight, compute), o.bias, o.accumulate);
    return;
  }
  if (same && M > 0 && M <= kMatvecMaxRows && quantizes_activations(w0.dtype, compute)) {
    const QuantizedActivations& xq = quantized_activations(x, M, K, w0.dtype);  // once for all outputs
    for (const LinearOutput& o : outs) quant_dot_matvec(o.y, xq, *o.weight, o.bias, o.accumulate);
    return;
  }
  if (!grouped) {
    for (const LinearOutput& o : outs) linear_forward(o.y, x, *o.weight, o.bias, M, o.accumulate, compute);
    return;
  }
  std::vector<MatvecOut> mv;
  for (const LinearOutput& o : outs) mv.push_back({o.weight->data, o.bias, o.y, o.weight->shape[0], o.accumulate});
  dense_matvec(mv.data(), int(mv.size()), x, M, K, w0.dtype, compute, "linear_forward_shared");
}

void linear_forward_few_rows(float* y, const float* x, const TensorView& w, int64_t M) {
  check_linear_args(w, "linear_forward_few_rows");
  const int64_t N = w.shape[0], K = w.shape[1];
  if (M <= 0) return;
  if (w.dtype == DType::F32)
    few_rows_parallel_over_m(y, x, w.ptr<const float>(), M, N, K);
  else if (w.dtype == DType::BF16)
    matvec_rows(y, x, w.ptr<const uint16_t>(), nullptr, M, N, K, false);
  else
    linear_forward(y, x, w, nullptr, M, false);
}

void linear_backward(float* dx, float* dW, float* db, const float* dy, const float* x, const TensorView& w, int64_t M,
                     const LinearCompute& compute) {
  check_linear_args(w, "linear_backward");
  const int64_t N = w.shape[0], K = w.shape[1];
  if (M <= 0) return;
  TAIA_CHECK(!dW || !is_block_dtype(w.dtype), "[linear_backward] '", w.name, "' is ", dtype_name(w.dtype),
             ": a quantized weight is frozen (no weight gradient)");
  if (dx) {
    if (compute.precision == Precision::BF16) {
      Bf16Workspace& ws = bf16_workspace(compute, "linear_backward");
      gemm_bf16(M, K, N, ws.activations(dy, M * N), N, ws.weight(w), K, /*b_is_nk=*/false, dx, K, /*accumulate=*/true);
    } else if (w.dtype == DType::F32 && M > kMatvecMaxRows) {
      gemm_f32(M, K, N, dy, N, w.ptr<const float>(), K, /*b_is_nk=*/false, dx, K, /*accumulate=*/true);
    } else if (w.dtype == DType::F32) {
      sgemm(false, false, M, K, N, 1.0f, dy, N, w.ptr<const float>(), K, 1.0f, dx, K);
    } else {
      for_each_widened_block(w, compute, [&](int64_t n0, int64_t nb, const float* block) {
        sgemm(false, false, M, K, nb, 1.0f, dy + n0, N, block, K, 1.0f, dx, K);
      });
    }
  }
  if (dW) sgemm(true, false, N, K, M, 1.0f, dy, N, x, K, 1.0f, dW, K);
  if (db) {
#pragma omp parallel for schedule(static) if (N > 256)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t m = 0; m < M; ++m) acc += dy[m * N + n];
      db[n] += acc;
    }
  }
}

void linear_forward_reference(float* y, const float* x, const TensorView& w, const float* bias, int64_t M,
                              bool accumulate) {
  check_linear_args(w, "linear_forward_reference");
  const int64_t N = w.shape[0], K = w.shape[1];
  std::vector<float> row(static_cast<size_t>(K));
  const size_t row_bytes = dtype_bytes(w.dtype, K);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      convert_to_f32(w.dtype, static_cast<const char*>(w.data) + size_t(n) * row_bytes, row.data(), row.size());
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        acc += double(x[m * K + k]) * double(row[size_t(k)]);
      }
      if (bias) acc += bias[n];
      float& out = y[m * N + n];
      out = accumulate ? out + float(acc) : float(acc);
    }
  }
}

template <typename T>
void linear_train_forward_ref(T* y, const T* x, const T* W, const T* b, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      T acc = b ? b[n] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * W[n * K + k];
      y[m * N + n] = acc;
    }
}

template <typename T>
void linear_backward_ref(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const T g = dy[m * N + n];
      if (db) db[n] += g;
      for (int64_t k = 0; k < K; ++k) {
        if (dx) dx[m * K + k] += g * W[n * K + k];
        if (dW) dW[n * K + k] += g * x[m * K + k];
      }
    }
}

#define TAIA_INSTANTIATE(T)                                                                                       \
  template void linear_train_forward_ref<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);         \
  template void linear_backward_ref<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
