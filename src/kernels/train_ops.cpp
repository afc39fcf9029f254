#include "kernels/train_ops.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/fast_math.h"
#include "kernels/matmul.h"

namespace taia {
namespace {
// Query rows per block of the causal attention GEMMs: smaller blocks skip more of the masked
// upper triangle, larger ones run the GEMMs closer to their peak rate.
constexpr int64_t kCausalBlock = 64;

// exp: the vectorisable float version in float kernels, the exact one in the double checks.
inline float exp_t(float x) { return fast_expf(x); }
inline double exp_t(double x) { return std::exp(x); }

// Row i of a causal attention matrix: softmax over p[0..i], zeros after.
template <typename T>
void causal_softmax_row(T* p, int64_t i, int64_t L) {
  T mx = p[0];
#pragma omp simd reduction(max : mx)
  for (int64_t j = 1; j <= i; ++j) mx = p[j] > mx ? p[j] : mx;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j <= i; ++j) sum += (p[j] = exp_t(p[j] - mx));
  const T inv = T(1) / sum;
  for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
  for (int64_t j = i + 1; j < L; ++j) p[j] = 0;
}
}  // namespace

template <typename T>
void rmsnorm_train_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t D, T eps) {
#pragma omp parallel for schedule(static) if (N > 16)
  for (int64_t r = 0; r < N; ++r) {
    const T* xr = x + r * D;
    T ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += xr[i] * xr[i];
    const T s = T(1) / std::sqrt(ss / T(D) + eps);
    rstd[r] = s;
    T* yr = y + r * D;
    for (int64_t i = 0; i < D; ++i) yr[i] = w[i] * (xr[i] * s);
  }
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t N, int64_t D) {
#pragma omp parallel for schedule(static) if (N > 16)
  for (int64_t r = 0; r < N; ++r) {
    const T* xr = x + r * D;
    const T* dyr = dy + r * D;
    const T s = rstd[r];
    // dx = s * (w*dy - xhat * mean(w*dy*xhat)), xhat = x*s
    T dot = 0;
    for (int64_t i = 0; i < D; ++i) dot += w[i] * dyr[i] * xr[i] * s;
    dot /= T(D);
    T* dxr = dx + r * D;
    for (int64_t i = 0; i < D; ++i) dxr[i] += s * (w[i] * dyr[i] - xr[i] * s * dot);
  }
  if (dw) {
    // Column sums: parallel over features so no two threads write the same dw[i].
#pragma omp parallel for schedule(static) if (D > 64)
    for (int64_t i = 0; i < D; ++i) {
      T acc = 0;
      for (int64_t r = 0; r < N; ++r) acc += dy[r * D + i] * x[r * D + i] * rstd[r];
      dw[i] += acc;
    }
  }
}

template <typename T>
void rope_apply(T* x, const int64_t* positions, int64_t N, int64_t heads, int64_t hd, const RopeTable& table,
                bool inverse) {
  const int64_t half = hd / 2;
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static) if (N > 16)
  for (int64_t r = 0; r < N; ++r) {
    const float* c = table.cos.data() + positions[r] * half;
    const float* s = table.sin.data() + positions[r] * half;
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (r * heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        const T x1 = v[i], x2 = v[i + half], ci = T(c[i]), si = sign * T(s[i]);
        v[i] = x1 * ci - x2 * si;
        v[i + half] = x2 * ci + x1 * si;
      }
    }
  }
}

template <typename T>
void swiglu_train_forward(T* h, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] / (T(1) + exp_t(-g[i])) * u[i];
}

template <typename T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + exp_t(-g[i]));
    const T silu = g[i] * sig;
    dg[i] += dh[i] * u[i] * sig * (T(1) + g[i] * (T(1) - sig));
    du[i] += dh[i] * silu;
  }
}

template <typename T>
void attention_train_forward(T* out, T* probs, const T* q, const T* k, const T* v, int64_t B, int64_t L, int64_t H,
                             int64_t KV, int64_t hd) {
  const int64_t group = H / KV;
  const T scale = T(1) / std::sqrt(T(hd));
  if constexpr (std::is_same_v<T, float>) {
    // Per (sequence, head) and block of query rows [r0, r1): S = Q K^T over keys [0, r1) only
    // (causality: later keys are masked), causal softmax by rows, O = P V over the same keys.
    // Blocks skip ~40 % of the full L x L products. Each thread runs its own single-threaded
    // GEMMs (oneDNN does not nest parallelism).
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / group;
        float* P = probs + (b * H + h) * L * L;
        const float* Q = q + (b * L * H + h) * hd;
        const float* K = k + (b * L * KV + g) * hd;
        const float* Vm = v + (b * L * KV + g) * hd;
        for (int64_t r0 = 0; r0 < L; r0 += kCausalBlock) {
          const int64_t r1 = std::min(L, r0 + kCausalBlock);
          float* Pb = P + r0 * L;
          sgemm(false, true, r1 - r0, r1, hd, scale, Q + r0 * H * hd, H * hd, K, KV * hd, 0.0f, Pb, L);
          for (int64_t i = r0; i < r1; ++i) causal_softmax_row(P + i * L, i, L);
          sgemm(false, false, r1 - r0, hd, r1, 1.0f, Pb, L, Vm, KV * hd, 0.0f, out + (b * L * H + h + r0 * H) * hd,
                H * hd);
        }
      }
    }
    return;
  }
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < L; ++i) {
        const T* qi = q + ((b * L + i) * H + h) * hd;
        T* p = probs + ((b * H + h) * L + i) * L;
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = k + ((b * L + j) * KV + g) * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
        }
        causal_softmax_row(p, i, L);
        T* o = out + ((b * L + i) * H + h) * hd;
        for (int64_t d = 0; d < hd; ++d) o[d] = 0;
        for (int64_t j = 0; j <= i; ++j) {
          const T* vj = v + ((b * L + j) * KV + g) * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p[j] * vj[d];
        }
      }
    }
  }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        int64_t B, int64_t L, int64_t H, int64_t KV, int64_t hd) {
  const int64_t group = H / KV;
  const T scale = T(1) / std::sqrt(T(hd));
  if constexpr (std::is_same_v<T, float>) {
    // Per (sequence, KV head), for each query head of the group and each block of query rows
    // [r0, r1) against keys [0, r1): dP = dO V^T, dS = P (dP - rowsum(P dP)) * scale,
    // dQ += dS K, dK += dS^T Q, dV += P^T dO: five GEMMs instead of scalar loops.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t g = 0; g < KV; ++g) {
        // Per-thread scratch that outlives the call: a fresh L x L buffer per head would be
        // mapped and faulted in on every layer of every step.
        thread_local std::vector<float> dS;
        dS.resize(static_cast<size_t>(L * L));
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
            const int64_t r1 = std::min(L, r0 + kCausalBlock), rows = r1 - r0;
            float* dSb = dS.data() + r0 * L;
            const float* Pb = P + r0 * L;
            const float* dOb = dO + r0 * H * hd;
            sgemm(false, true, rows, r1, hd, 1.0f, dOb, H * hd, Vm, KV * hd, 0.0f, dSb, L);
            for (int64_t i = r0; i < r1; ++i) {
              const float* p = P + i * L;
              float* d = dS.data() + i * L;
              float row = 0;
#pragma omp simd reduction(+ : row)
              for (int64_t j = 0; j <= i; ++j) row += p[j] * d[j];
#pragma omp simd
              for (int64_t j = 0; j <= i; ++j) d[j] = p[j] * (d[j] - row) * scale;
              for (int64_t j = i + 1; j < r1; ++j) d[j] = 0;
            }
            sgemm(false, false, rows, hd, r1, 1.0f, dSb, L, K, KV * hd, 1.0f, dQ + r0 * H * hd, H * hd);
            sgemm(true, false, r1, hd, rows, 1.0f, dSb, L, Q + r0 * H * hd, H * hd, 1.0f, dK, KV * hd);
            sgemm(true, false, r1, hd, rows, 1.0f, Pb, L, dOb, H * hd, 1.0f, dV, KV * hd);
          }
        }
      }
    }
    return;
  }
  // Parallel over (sequence, KV head): every query head of a group writes the same dk/dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < KV; ++g) {
      std::vector<T> dp(static_cast<size_t>(L));
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t i = 0; i < L; ++i) {
          const T* p = probs + ((b * H + h) * L + i) * L;
          const T* doi = dout + ((b * L + i) * H + h) * hd;
          T row = 0;
          for (int64_t j = 0; j <= i; ++j) {
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
          for (int64_t j = 0; j <= i; ++j) {
            const T ds = p[j] * (dp[size_t(j)] - row) * scale;
            const T* kj = k + ((b * L + j) * KV + g) * hd;
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

template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t N, int64_t V, T scale) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    T* row = logits + r * V;
    if (targets[r] < 0) {
      for (int64_t i = 0; i < V; ++i) row[i] = 0;
      continue;
    }
    T mx = row[0];
    for (int64_t i = 1; i < V; ++i) mx = row[i] > mx ? row[i] : mx;
    const T target_logit = row[targets[r]];
    // One exp per logit: row becomes exp(logit - max), then the scaled softmax minus one-hot.
    T sum_t = 0;
#pragma omp simd reduction(+ : sum_t)
    for (int64_t i = 0; i < V; ++i) {
      row[i] = exp_t(row[i] - mx);
      sum_t += row[i];
    }
    const double sum = double(sum_t);
    total += std::log(sum) + double(mx) - double(target_logit);
    const T inv = T(double(scale) / sum);
    for (int64_t i = 0; i < V; ++i) row[i] *= inv;
    row[targets[r]] -= scale;
  }
  return total;
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

#define TAIA_INSTANTIATE(T)                                                                                        \
  template void rmsnorm_train_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, T);                         \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t);             \
  template void rope_apply<T>(T*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&, bool);             \
  template void swiglu_train_forward<T>(T*, const T*, const T*, int64_t);                                          \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);                                 \
  template void attention_train_forward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,        \
                                           int64_t, int64_t);                                                      \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t,      \
                                      int64_t, int64_t, int64_t, int64_t);                                         \
  template double cross_entropy_forward_backward<T>(T*, const int32_t*, int64_t, int64_t, T);                      \
  template void linear_train_forward_ref<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);          \
  template void linear_backward_ref<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);

TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)

}  // namespace taia
