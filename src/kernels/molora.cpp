#include "kernels/molora.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/gemm.h"

namespace taia {
namespace {

// C[M, N] = alpha op(A) op(B) + beta C, row-major: sgemm for float, plain loops for double.
template <typename T>
void gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
            int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        T s = 0;
        for (int64_t p = 0; p < K; ++p) s += (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
        C[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
      }
  }
}

// The routing slots (row * k + j) given to each expert, in row order.
std::vector<std::vector<int64_t>> slots_by_expert(const int32_t* expert, int64_t experts, int64_t slots) {
  std::vector<std::vector<int64_t>> groups(static_cast<size_t>(experts));
  for (int64_t s = 0; s < slots; ++s) groups[size_t(expert[s])].push_back(s);
  return groups;
}

// dst[i] = src[row of slots[i]] ([n, cols] from [N, cols]).
template <typename T>
void gather_rows(std::vector<T>& dst, const T* src, const std::vector<int64_t>& slots, int64_t k, int64_t cols) {
  const int64_t n = int64_t(slots.size());
  dst.resize(size_t(n * cols));
#pragma omp parallel for schedule(static) if (n * cols > 32768)
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(dst.data() + i * cols, src + (slots[size_t(i)] / k) * cols, size_t(cols) * sizeof(T));
}

// dst[row of slots[i]] += src[i]. An expert's slots are on distinct rows (top-k picks distinct
// experts), so rows can be added in parallel.
template <typename T>
void scatter_add_rows(T* dst, const std::vector<T>& src, const std::vector<int64_t>& slots, int64_t k, int64_t cols) {
  const int64_t n = int64_t(slots.size());
#pragma omp parallel for schedule(static) if (n * cols > 32768)
  for (int64_t i = 0; i < n; ++i) {
    T* d = dst + (slots[size_t(i)] / k) * cols;
    const T* s = src.data() + i * cols;
    for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
  }
}

// logits = x W^T + b; per row the k largest logits (ties: the lower index) and a softmax over them.
template <typename T>
void route(const MoloraRouting<T>& r, const T* x, const MoloraWeights<T>& w, int64_t N) {
  const int64_t E = w.experts, k = w.top_k;
  gemm_t<T>(false, true, N, E, w.in, T(1), x, w.in, w.router_w, w.in, T(0), r.logits, E);
#pragma omp parallel for schedule(static) if (N > 256)
  for (int64_t n = 0; n < N; ++n) {
    T* l = r.logits + n * E;
    for (int64_t e = 0; e < E; ++e) l[e] += w.router_b[e];
    int32_t* sel = r.expert + n * k;
    for (int64_t j = 0; j < k; ++j) {
      int32_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t i = 0; i < j; ++i) taken = taken || sel[i] == e;
        if (!taken && (best < 0 || l[e] > l[best])) best = int32_t(e);
      }
      sel[j] = best;
    }
    T* g = r.gate + n * k;
    T sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += g[j] = std::exp(l[sel[j]] - l[sel[0]]);  // sel[0]: the largest
    for (int64_t j = 0; j < k; ++j) g[j] /= sum;
  }
}

}  // namespace

template <typename T>
void molora_forward(T* y, const MoloraRouting<T>& r, const T* x, const MoloraWeights<T>& w, int64_t N) {
  route(r, x, w, N);
  const int64_t k = w.top_k, R = w.rank;
  const auto groups = slots_by_expert(r.expert, w.experts, N * k);
  thread_local std::vector<T> xs, us, ys;  // [n_e, in], [n_e, r], [n_e, out] of one expert
  for (int64_t e = 0; e < w.experts; ++e) {
    const std::vector<int64_t>& s = groups[size_t(e)];
    const int64_t n = int64_t(s.size());
    if (n == 0) continue;
    gather_rows(xs, x, s, k, w.in);
    us.resize(size_t(n * R));
    gemm_t<T>(false, true, n, R, w.in, T(1), xs.data(), w.in, w.A + e * R * w.in, w.in, T(0), us.data(), R);
    for (int64_t i = 0; i < n; ++i) {  // keep u; weigh it by gate * scale for the up-projection
      T* ui = us.data() + i * R;
      std::memcpy(r.u + s[size_t(i)] * R, ui, size_t(R) * sizeof(T));
      const T c = r.gate[s[size_t(i)]] * w.scale;
      for (int64_t q = 0; q < R; ++q) ui[q] *= c;
    }
    ys.resize(size_t(n * w.out));
    gemm_t<T>(false, true, n, w.out, R, T(1), us.data(), R, w.B + e * w.out * R, R, T(0), ys.data(), w.out);
    scatter_add_rows(y, ys, s, k, w.out);
  }
}

namespace {

// The balance loss aux = E * sum_e f_e P_e of a routing over the counted rows (M of them) and,
// when d_logits is set, d_logits[n, E] += weight * d aux / d logits on a counted row n:
// E / M * p[n, i] * (f_i - sum_e p[n, e] f_e) (f carries no gradient).
template <typename T>
double balance(const MoloraRouting<T>& r, const MoloraWeights<T>& w, int64_t N, const uint8_t* rows_counted,
               T* d_logits, double weight) {
  const int64_t E = w.experts;
  auto counted = [&](int64_t n) { return !rows_counted || rows_counted[n]; };
  int64_t M = 0;
  for (int64_t n = 0; n < N; ++n) M += counted(n);
  if (M == 0) return 0.0;
  std::vector<int64_t> counts(static_cast<size_t>(E), 0);
  molora_count_slots(counts.data(), r.expert, E, N * w.top_k, rows_counted, w.top_k);
  std::vector<double> f(static_cast<size_t>(E)), mean_p(static_cast<size_t>(E), 0.0), p(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) f[size_t(e)] = double(counts[size_t(e)]) / double(M * w.top_k);
  for (int64_t n = 0; n < N; ++n) {
    if (!counted(n)) continue;
    const T* l = r.logits + n * E;
    double mx = double(l[0]), sum = 0, pf = 0;
    for (int64_t e = 1; e < E; ++e) mx = std::max(mx, double(l[e]));
    for (int64_t e = 0; e < E; ++e) sum += p[size_t(e)] = std::exp(double(l[e]) - mx);
    for (int64_t e = 0; e < E; ++e) {
      p[size_t(e)] /= sum;
      mean_p[size_t(e)] += p[size_t(e)] / double(M);
      pf += p[size_t(e)] * f[size_t(e)];
    }
    if (d_logits)
      for (int64_t e = 0; e < E; ++e)
        d_logits[n * E + e] += T(weight * double(E) / double(M) * p[size_t(e)] * (f[size_t(e)] - pf));
  }
  double aux = 0;
  for (int64_t e = 0; e < E; ++e) aux += f[size_t(e)] * mean_p[size_t(e)];
  return double(E) * aux;
}

}  // namespace

template <typename T>
double molora_balance_loss(const MoloraRouting<T>& r, const MoloraWeights<T>& w, int64_t N,
                           const uint8_t* rows_counted) {
  return balance<T>(r, w, N, rows_counted, nullptr, 0.0);
}

namespace {

// The experts' part of the backward: dx += , dA, dB += ; d_gate[N, k] = d loss / d gate.
template <typename T>
void experts_backward(T* dx, const MoloraGrads<T>& g, T* d_gate, const T* dy, const T* x, const MoloraRouting<T>& r,
                      const MoloraWeights<T>& w, int64_t N) {
  const int64_t k = w.top_k, R = w.rank;
  const auto groups = slots_by_expert(r.expert, w.experts, N * k);
  // Of one expert: gs = dy rows [n_e, out], ds = gs B_e -> du [n_e, r], us = weighted u [n_e, r],
  // xs = x rows [n_e, in], dxs = du A_e [n_e, in].
  thread_local std::vector<T> gs, ds, us, xs, dxs;
  for (int64_t e = 0; e < w.experts; ++e) {
    const std::vector<int64_t>& s = groups[size_t(e)];
    const int64_t n = int64_t(s.size());
    if (n == 0) continue;
    const T* A = w.A + e * R * w.in;
    const T* B = w.B + e * w.out * R;
    gather_rows(gs, dy, s, k, w.out);
    ds.resize(size_t(n * R));
    us.resize(size_t(n * R));
    gemm_t<T>(false, false, n, R, w.out, T(1), gs.data(), w.out, B, R, T(0), ds.data(), R);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = s[size_t(i)];
      const T* u = r.u + slot * R;
      T* di = ds.data() + i * R;
      T* ui = us.data() + i * R;
      T dot = 0;
      for (int64_t q = 0; q < R; ++q) dot += di[q] * u[q];
      d_gate[slot] = w.scale * dot;  // y += gate * scale * B u
      const T c = r.gate[slot] * w.scale;
      for (int64_t q = 0; q < R; ++q) {
        di[q] *= c;
        ui[q] = u[q] * c;
      }
    }
    gather_rows(xs, x, s, k, w.in);
    gemm_t<T>(true, false, R, w.in, n, T(1), ds.data(), R, xs.data(), w.in, T(1), g.dA + e * R * w.in, w.in);
    gemm_t<T>(true, false, w.out, R, n, T(1), gs.data(), w.out, us.data(), R, T(1), g.dB + e * w.out * R, R);
    if (!dx) continue;
    dxs.resize(size_t(n * w.in));
    gemm_t<T>(false, false, n, w.in, R, T(1), ds.data(), R, A, w.in, T(0), dxs.data(), w.in);
    scatter_add_rows(dx, dxs, s, k, w.in);
  }
}

}  // namespace

template <typename T>
double molora_backward(T* dx, const MoloraGrads<T>& g, const T* dy, const T* x, const MoloraRouting<T>& r,
                       const MoloraWeights<T>& w, int64_t N, double balance_weight, const uint8_t* rows_counted) {
  const int64_t E = w.experts, k = w.top_k;
  std::vector<T> d_gate(size_t(N * k));
  experts_backward(dx, g, d_gate.data(), dy, x, r, w, N);
  // With k = 1 and no balance loss the router's gradient is exactly zero: the softmax over one
  // logit is constant.
  if (k == 1 && balance_weight == 0) return molora_balance_loss(r, w, N, rows_counted);
  // Through the softmax over the selected logits: d logit_j = gate_j (d gate_j - sum_i gate_i d gate_i).
  std::vector<T> d_logits(size_t(N * E), T(0));
  for (int64_t n = 0; n < N; ++n) {
    const T* gt = r.gate + n * k;
    const T* dg = d_gate.data() + n * k;
    T s = 0;
    for (int64_t j = 0; j < k; ++j) s += gt[j] * dg[j];
    for (int64_t j = 0; j < k; ++j) d_logits[size_t(n * E + r.expert[n * k + j])] += gt[j] * (dg[j] - s);
  }
  const double aux =
      balance<T>(r, w, N, rows_counted, balance_weight != 0 ? d_logits.data() : nullptr, balance_weight);
  gemm_t<T>(true, false, E, w.in, N, T(1), d_logits.data(), E, x, w.in, T(1), g.d_router_w, w.in);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < E; ++e) g.d_router_b[e] += d_logits[size_t(n * E + e)];
  if (dx) gemm_t<T>(false, false, N, w.in, E, T(1), d_logits.data(), E, w.router_w, w.in, T(1), dx, w.in);
  return aux;
}

void molora_count_slots(int64_t* counts, const int32_t* expert, int64_t experts, int64_t slots,
                        const uint8_t* rows_counted, int64_t top_k) {
  for (int64_t s = 0; s < slots; ++s)
    if (expert[s] >= 0 && expert[s] < experts && (!rows_counted || rows_counted[s / top_k])) ++counts[expert[s]];
}

#define TAIA_INSTANTIATE(T)                                                                                    \
  template void molora_forward<T>(T*, const MoloraRouting<T>&, const T*, const MoloraWeights<T>&, int64_t);     \
  template double molora_backward<T>(T*, const MoloraGrads<T>&, const T*, const T*, const MoloraRouting<T>&,    \
                                     const MoloraWeights<T>&, int64_t, double, const uint8_t*);                 \
  template double molora_balance_loss<T>(const MoloraRouting<T>&, const MoloraWeights<T>&, int64_t,            \
                                         const uint8_t*);
TAIA_INSTANTIATE(float)
TAIA_INSTANTIATE(double)
#undef TAIA_INSTANTIATE

}  // namespace taia
