// Forward/backward kernel pairs for training, llm.c style: each *_backward accumulates into
// its gradient buffers (+=). Templated on the scalar so the gradient checks run them in double
// precision against central finite differences; training instantiates float.
//
// Shapes use N = rows (batch x time), D = features. Buffers are row-major and contiguous.
#pragma once
#include <cstdint>

#include "kernels/rope.h"

namespace taia {

// y[N,D] = w[D] * x * rstd, rstd[N] = 1 / sqrt(mean(x^2) + eps) (saved for backward).
template <typename T>
void rmsnorm_train_forward(T* y, T* rstd, const T* x, const T* w, int64_t N, int64_t D, T eps);
// dx[N,D] += ..., dw[D] += ... (dw may be null for a frozen norm).
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const T* rstd, int64_t N, int64_t D);

// HF rotate-half RoPE on x[N, heads, hd] with cos/sin of position * inv_freq; `inverse` rotates by
// the negative angle, which is the backward of the forward rotation (applied to the gradient).
template <typename T>
void rope_apply(T* x, const int64_t* positions, int64_t N, int64_t heads, int64_t hd, const RopeTable& table,
                bool inverse);

// h[n] = silu(g) * u ; backward: dg += dh * u * silu'(g), du += dh * silu(g).
template <typename T>
void swiglu_train_forward(T* h, const T* g, const T* u, int64_t n);
template <typename T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t n);

// Causal GQA attention within each of B sequences of length L.
// q[B,L,H,hd], k/v[B,L,KV,hd] -> out[B,L,H,hd]; probs[B,H,L,L] saved (upper triangle zero).
template <typename T>
void attention_train_forward(T* out, T* probs, const T* q, const T* k, const T* v, int64_t B, int64_t L, int64_t H,
                             int64_t KV, int64_t hd);
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k, const T* v,
                        int64_t B, int64_t L, int64_t H, int64_t KV, int64_t hd);

// Cross-entropy over logits[N,V] with targets[N] (-1 = ignored). Returns the summed loss over
// the non-ignored rows and overwrites logits with d(loss * scale)/d(logits) (zero rows for
// ignored targets). The caller picks scale = 1 / (number of non-ignored rows) for a mean.
template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* targets, int64_t N, int64_t V, T scale);

// Reference linear layer for the gradient checks: y[M,N] = x[M,K] W[N,K]^T (+ b).
template <typename T>
void linear_train_forward_ref(T* y, const T* x, const T* W, const T* b, int64_t M, int64_t N, int64_t K);
// dx[M,K] += dy W ; dW[N,K] += dy^T x ; db[N] += sum dy (any of dx, dW, db may be null).
template <typename T>
void linear_backward_ref(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t M, int64_t N, int64_t K);

}  // namespace taia
