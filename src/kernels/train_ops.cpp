#include "kernels/train_ops.h"

#include <cmath>
#include <vector>

namespace taia {

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
void rope_apply(T* x, const int64_t* positions, int64_t N, int64_t heads, int64_t hd, const float* inv_freq,
                bool inverse) {
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static) if (N > 16)
  for (int64_t r = 0; r < N; ++r) {
    std::vector<T> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    const float pos = float(positions[r]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // F32, as HF and the inference kernel compute it
      c[size_t(i)] = T(std::cos(angle));
      s[size_t(i)] = inverse ? -T(std::sin(angle)) : T(std::sin(angle));
    }
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (r * heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        const T x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[size_t(i)] - x2 * s[size_t(i)];
        v[i + half] = x2 * c[size_t(i)] + x1 * s[size_t(i)];
      }
    }
  }
}

template <typename T>
void swiglu_train_forward(T* h, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
}

template <typename T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + std::exp(-g[i]));
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
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < L; ++i) {
        const T* qi = q + ((b * L + i) * H + h) * hd;
        T* p = probs + ((b * H + h) * L + i) * L;
        T mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          const T* kj = k + ((b * L + j) * KV + g) * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qi[d] * kj[d];
          p[j] = dot * scale;
          mx = p[j] > mx ? p[j] : mx;
        }
        T sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t j = 0; j <= i; ++j) p[j] /= sum;
        for (int64_t j = i + 1; j < L; ++j) p[j] = 0;
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
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(double(row[i] - mx));
    const double log_z = std::log(sum) + double(mx);
    total += log_z - double(row[targets[r]]);
    for (int64_t i = 0; i < V; ++i) row[i] = T(std::exp(double(row[i]) - log_z)) * scale;
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
  template void rope_apply<T>(T*, const int64_t*, int64_t, int64_t, int64_t, const float*, bool);                  \
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
