#include "kernels/attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "kernels/fast_math.h"
#include "kernels/gemm.h"
#include "kernels/softcap.h"
#include "kernels/softmax.h"

namespace taia {
namespace {


// d cap*tanh(x/cap) / dx at the logit x.
template <typename T>
inline T soft_cap_grad(T x, T cap) {
  const T t = std::tanh(x / cap);
  return T(1) - t * t;
}

// Row i of a causal attention matrix: softmax over p[lo..i] (lo > 0 under a sliding window),
// zeros elsewhere.
template <typename T>
void causal_softmax_row(T* p, int64_t i, int64_t L, int64_t lo) {
  T mx = p[lo];
#pragma omp simd reduction(max : mx)
  for (int64_t j = lo + 1; j <= i; ++j) mx = p[j] > mx ? p[j] : mx;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = lo; j <= i; ++j) sum += (p[j] = exp_t(p[j] - mx));
  const T inv = T(1) / sum;
  for (int64_t j = lo; j <= i; ++j) p[j] *= inv;
  for (int64_t j = 0; j < lo; ++j) p[j] = 0;
  for (int64_t j = i + 1; j < L; ++j) p[j] = 0;
}

constexpr int64_t kMaxHeadDim = 512;  // the widening buffer of attend_one (on the stack)

inline float f16_value(uint16_t bits) {
#if defined(__F16C__)
  return _cvtsh_ss(bits);
#else
  return f16_to_f32(bits);
#endif
}

inline void widen_f16(const uint16_t* r, int64_t n, float* out) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + i))));
#endif
  for (; i < n; ++i) out[i] = f16_value(r[i]);
}

// Head `offset` .. offset + hd - 1 of a cache row widened to F32 (out[hd]); F32 rows are read in
// place. Q8_0: blocks of 32 (d, then 32 int8), offset and hd multiples of 32.
template <DType S>
inline const float* widen_head(const uint8_t* row, int64_t offset, int64_t hd, float* out) {
  if constexpr (S == DType::F32) {
    return reinterpret_cast<const float*>(row) + offset;
  } else if constexpr (S == DType::BF16) {
    const uint16_t* r = reinterpret_cast<const uint16_t*>(row) + offset;
#pragma omp simd
    for (int64_t i = 0; i < hd; ++i) out[i] = bf16_to_f32(r[i]);
  } else if constexpr (S == DType::F16) {
    widen_f16(reinterpret_cast<const uint16_t*>(row) + offset, hd, out);
  } else {
    const uint8_t* blk = row + (offset / 32) * 34;
    for (int64_t b = 0; b < hd / 32; ++b, blk += 34) {
      const float d = f16_value(uint16_t(blk[0] | blk[1] << 8));
      const int8_t* qs = reinterpret_cast<const int8_t*>(blk + 2);
#pragma omp simd
      for (int i = 0; i < 32; ++i) out[32 * b + i] = d * float(qs[i]);
    }
  }
  return out;
}

// One query row against the rows of its key spans, keys and values stored as S. HD > 0 fixes
// the head size at compile time so the dot products unroll into a few vector FMAs and one
// reduction; HD == 0 is the generic loop.
template <int HD, DType S>
void attend_one(float* out, const float* qh, const KvRows& kv, int64_t offset, const KeySpans& spans,
                int64_t hd_runtime, float scale, float softcap, float* scores) {
  const int64_t hd = HD > 0 ? HD : hd_runtime;
  const uint8_t* k = static_cast<const uint8_t*>(kv.k);
  const uint8_t* v = static_cast<const uint8_t*>(kv.v);
  alignas(64) float row[kMaxHeadDim];  // a widened key or value head
  int64_t n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float* kj = widen_head<S>(k + j * kv.row_bytes, offset, hd, row);
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kj[i];
      scores[n++] = dot * scale;
    }
  if (softcap > 0.0f) softcap_forward<float>(scores, n, softcap);
  softmax_forward(scores, n);
  for (int64_t i = 0; i < hd; ++i) out[i] = 0.0f;
  n = 0;
  for (int s = 0; s < 2; ++s)
    for (int64_t j = spans.begin[s]; j < spans.end[s]; ++j) {
      const float p = scores[n++];
      const float* vj = widen_head<S>(v + j * kv.row_bytes, offset, hd, row);
#pragma omp simd
      for (int64_t i = 0; i < hd; ++i) out[i] += p * vj[i];
    }
}

using AttendFn = void (*)(float*, const float*, const KvRows&, int64_t, const KeySpans&, int64_t, float, float, float*);

template <DType S>
AttendFn pick_for(int64_t hd) {
  switch (hd) {
    case 8: return attend_one<8, S>;
    case 16: return attend_one<16, S>;
    case 32: return attend_one<32, S>;
    case 64: return attend_one<64, S>;
    case 80: return attend_one<80, S>;
    case 96: return attend_one<96, S>;
    case 128: return attend_one<128, S>;
    case 256: return attend_one<256, S>;
    default: return attend_one<0, S>;
  }
}

AttendFn pick(DType dtype, int64_t hd) {
  switch (dtype) {
    case DType::F32: return pick_for<DType::F32>(hd);
    case DType::BF16: return pick_for<DType::BF16>(hd);
    case DType::F16: return pick_for<DType::F16>(hd);
    case DType::Q8_0: return pick_for<DType::Q8_0>(hd);
    default: return nullptr;
  }
}

}  // namespace

void attention_forward_spans(float* out, const float* q, const KvRows& kv, const KeySpans* spans, int64_t T,
                             const AttentionShape& shape) {
  const int64_t H = shape.n_heads, hd = shape.head_dim;
  const int64_t group = H / shape.n_kv_heads;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const AttendFn attend = pick(kv.dtype, hd);
  TAIA_CHECK(attend != nullptr, "[attention] expected keys and values stored as F32, BF16, F16 or Q8_0, got ",
             dtype_name(kv.dtype));
  TAIA_CHECK(hd <= kMaxHeadDim && (kv.dtype != DType::Q8_0 || hd % 32 == 0), "[attention] expected head_dim <= ",
             kMaxHeadDim, " (a multiple of 32 for Q8_0 rows), got ", hd);
  int64_t longest = 0, work = 0;
  for (int64_t t = 0; t < T; ++t) {
    longest = std::max(longest, spans[t].size());
    work += spans[t].size();
  }
  // Small problems (tiny models, short contexts) lose more to fork/join than they gain.
  const bool parallel = work * H * hd >= (int64_t(1) << 15);
#pragma omp parallel if (parallel)
  {
    std::vector<float> scores(static_cast<size_t>(longest));  // one row of probabilities, per thread
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < H; ++h) {
        attend(out + (t * H + h) * hd, q + (t * H + h) * hd, kv, (h / group) * hd, spans[t], hd, scale,
               shape.softcap, scores.data());
      }
    }
  }
}

void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t T, int64_t pos0,
                       int64_t kv_row_stride, const AttentionShape& shape) {
  std::vector<KeySpans> spans(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    spans[size_t(t)].begin[0] = window_start(pos0 + t, shape.window);
    spans[size_t(t)].end[0] = pos0 + t + 1;
  }
  attention_forward_spans(out, q, KvRows{k, v, DType::F32, kv_row_stride * int64_t(sizeof(float))}, spans.data(), T,
                          shape);
}

namespace {

// Float: per (sequence, head), GEMMs over blocks of query rows.
void attention_train_forward_blocked(float* out, float* probs, const float* q, const float* k, const float* v,
                                     int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const float cap = shape.softcap;
  // Per (sequence, head) and block of query rows [r0, r1): S = Q K^T over keys [k0, r1) only
  // (causality: later keys are masked; k0 > 0 under a sliding window), causal softmax by rows,
  // O = P V over the same keys. Blocks skip ~40 % of the full L x L products. Each thread runs
  // its own single-threaded GEMMs (oneDNN does not nest parallelism).
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      float* P = probs + (b * H + h) * L * L;
      const float* Q = q + (b * L * H + h) * hd;
      const float* K = k + (b * L * KV + g) * hd;
      const float* Vm = v + (b * L * KV + g) * hd;
      for (int64_t r0 = 0; r0 < L; r0 += kCausalBlock) {
        const int64_t r1 = std::min(L, r0 + kCausalBlock), k0 = window_start(r0, shape.window);
        float* Pb = P + r0 * L;
        sgemm(false, true, r1 - r0, r1 - k0, hd, scale, Q + r0 * H * hd, H * hd, K + k0 * KV * hd, KV * hd, 0.0f,
              Pb + k0, L);
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t lo = window_start(i, shape.window);
          if (cap > 0.0f) softcap_forward<float>(P + i * L + lo, i - lo + 1, cap);
          causal_softmax_row(P + i * L, i, L, lo);
        }
        sgemm(false, false, r1 - r0, hd, r1 - k0, 1.0f, Pb + k0, L, Vm + k0 * KV * hd, KV * hd, 0.0f,
              out + (b * L * H + h + r0 * H) * hd, H * hd);
      }
    }
  }
}

// Any scalar (double in the gradient checks): plain loops, the definition.
template <typename T>
void attention_train_forward_loops(T* out, T* probs, const T* q, const T* k, const T* v, int64_t batch,
                                   int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const T scale = shape.scale > 0.0f ? T(shape.scale) : T(1) / std::sqrt(T(hd));
  const T cap = T(shape.softcap);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < L; ++i) {
        const T* qi = q + ((b * L + i) * H + h) * hd;
        T* p = probs + ((b * H + h) * L + i) * L;
        const int64_t lo = window_start(i, shape.window);
        for (int64_t j = lo; j <= i; ++j) {
          const T* kj = k + ((b * L + j) * KV + g) * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
        }
        if (cap > T(0)) softcap_forward<T>(p + lo, i - lo + 1, cap);
        causal_softmax_row(p, i, L, lo);
        T* o = out + ((b * L + i) * H + h) * hd;
        for (int64_t d = 0; d < hd; ++d) o[d] = 0;
        for (int64_t j = lo; j <= i; ++j) {
          const T* vj = v + ((b * L + j) * KV + g) * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p[j] * vj[d];
        }
      }
    }
  }
}

// Float: per (sequence, KV head), GEMMs over blocks of query rows.
void attention_backward_blocked(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                                const float* q, const float* k, const float* v, int64_t batch, int64_t seq_len,
                                const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(float(hd));
  const float cap = shape.softcap;
  // Per (sequence, KV head), for each query head of the group and each block of query rows
  // [r0, r1) against keys [k0, r1): dP = dO V^T, dS = P (dP - rowsum(P dP)) * scale,
  // dQ += dS K, dK += dS^T Q, dV += P^T dO: five GEMMs instead of scalar loops.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < KV; ++g) {
      // Per-thread scratch that outlives the call: a fresh L x L buffer per head would be
      // mapped and faulted in on every layer of every step.
      thread_local std::vector<float> dS, S;
      dS.resize(static_cast<size_t>(L * L));
      // A block's logits before the cap, recomputed.
      if (cap > 0.0f) S.resize(static_cast<size_t>(kCausalBlock * L));
      const float* K = k + (b * L * KV + g) * hd;
      const float* Vm = v + (b * L * KV + g) * hd;
      float* dK = dk + (b * L * KV + g) * hd;
      float* dV = dv + (b * L * KV + g) * hd;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const float* P = probs + (b * H + h) * L * L;
        const float* dO = dout + (b * L * H + h) * hd;
        const float* Q = q + (b * L * H + h) * hd;
        float* dQ = dq + (b * L * H + h) * hd;
        for (int64_t r0 = 0; r0 < L; r0 += kCausalBlock) {
          const int64_t r1 = std::min(L, r0 + kCausalBlock), rows = r1 - r0, k0 = window_start(r0, shape.window);
          const int64_t keys = r1 - k0;
          float* dSb = dS.data() + r0 * L + k0;
          const float* Pb = P + r0 * L + k0;
          const float* dOb = dO + r0 * H * hd;
          sgemm(false, true, rows, keys, hd, 1.0f, dOb, H * hd, Vm + k0 * KV * hd, KV * hd, 0.0f, dSb, L);
          if (cap > 0.0f)  // the logits before the cap again (probs hold only the softmax): S = scale Q K^T
            sgemm(false, true, rows, keys, hd, scale, Q + r0 * H * hd, H * hd, K + k0 * KV * hd, KV * hd, 0.0f,
                  S.data() + k0, L);
          for (int64_t i = r0; i < r1; ++i) {
            const float* p = P + i * L;
            float* d = dS.data() + i * L;
            const int64_t lo = window_start(i, shape.window);
            float row = 0;
#pragma omp simd reduction(+ : row)
            for (int64_t j = lo; j <= i; ++j) row += p[j] * d[j];
            if (cap > 0.0f) {
              const float* s = S.data() + (i - r0) * L;
              for (int64_t j = lo; j <= i; ++j) d[j] = p[j] * (d[j] - row) * soft_cap_grad(s[j], cap) * scale;
            } else {
#pragma omp simd
              for (int64_t j = lo; j <= i; ++j) d[j] = p[j] * (d[j] - row) * scale;
            }
            for (int64_t j = k0; j < lo; ++j) d[j] = 0;
            for (int64_t j = i + 1; j < r1; ++j) d[j] = 0;
          }
          sgemm(false, false, rows, hd, keys, 1.0f, dSb, L, K + k0 * KV * hd, KV * hd, 1.0f, dQ + r0 * H * hd, H * hd);
          sgemm(true, false, keys, hd, rows, 1.0f, dSb, L, Q + r0 * H * hd, H * hd, 1.0f, dK + k0 * KV * hd, KV * hd);
          sgemm(true, false, keys, hd, rows, 1.0f, Pb, L, dOb, H * hd, 1.0f, dV + k0 * KV * hd, KV * hd);
        }
      }
    }
  }
}

// Any scalar: plain loops, the definition.
template <typename T>
void attention_backward_loops(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                              const T* v, int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  const int64_t B = batch, L = seq_len, H = shape.n_heads, KV = shape.n_kv_heads, hd = shape.head_dim;
  const int64_t group = H / KV;
  const T scale = shape.scale > 0.0f ? T(shape.scale) : T(1) / std::sqrt(T(hd));
  const T cap = T(shape.softcap);
  // Parallel over (sequence, KV head): every query head of a group writes the same dk/dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < KV; ++g) {
      std::vector<T> dp(static_cast<size_t>(L));
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i = 0; i < L; ++i) {
          const T* p = probs + ((b * H + h) * L + i) * L;
          const T* doi = dout + ((b * L + i) * H + h) * hd;
          const int64_t lo = window_start(i, shape.window);
          T row = 0;
          for (int64_t j = lo; j <= i; ++j) {
            const T* vj = v + ((b * L + j) * KV + g) * hd;
            T* dvj = dv + ((b * L + j) * KV + g) * hd;
            T d = 0;
            for (int64_t e = 0; e < hd; ++e) {
              d += doi[e] * vj[e];
              dvj[e] += p[j] * doi[e];
            }
            dp[size_t(j)] = d;
            row += p[j] * d;
          }
          const T* qi = q + ((b * L + i) * H + h) * hd;
          T* dqi = dq + ((b * L + i) * H + h) * hd;
          for (int64_t j = lo; j <= i; ++j) {
            const T* kj = k + ((b * L + j) * KV + g) * hd;
            T capped_grad = T(1);
            if (cap > T(0)) {  // the logit before the cap, recomputed
              T dot = 0;
              for (int64_t e = 0; e < hd; ++e) dot += qi[e] * kj[e];
              capped_grad = soft_cap_grad(dot * scale, cap);
            }
            const T ds = p[j] * (dp[size_t(j)] - row) * capped_grad * scale;
            T* dkj = dk + ((b * L + j) * KV + g) * hd;
            for (int64_t e = 0; e < hd; ++e) {
              dqi[e] += ds * kj[e];
              dkj[e] += ds * qi[e];
            }
          }
        }
      }
    }
  }
}


}  // namespace

template <typename T>
void attention_train_forward(T* out, T* probs, const T* q, const T* k, const T* v, int64_t batch, int64_t seq_len,
                             const AttentionShape& shape) {
  if constexpr (std::is_same_v<T, float>)
    attention_train_forward_blocked(out, probs, q, k, v, batch, seq_len, shape);
  else
    attention_train_forward_loops(out, probs, q, k, v, batch, seq_len, shape);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        int64_t batch, int64_t seq_len, const AttentionShape& shape) {
  if constexpr (std::is_same_v<T, float>)
    attention_backward_blocked(dq, dk, dv, dout, probs, q, k, v, batch, seq_len, shape);
  else
    attention_backward_loops(dq, dk, dv, dout, probs, q, k, v, batch, seq_len, shape);
}

#define TAIA_INSTANTIATE(T)                                                                                   \
  template void attention_train_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,              \
                                           const AttentionShape&);                                              \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t,    \
                                      int64_t, const AttentionShape&);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
