// Mixture of LoRA experts on one projection (MoLoRA, the TAIA paper's second fine-tuning method):
// a router (a linear layer with bias) scores E experts per row, the k best are kept and weighted
// by a softmax over their logits, and each adds its LoRA branch:
//   y[n] += sum_{j < k} gate[n, j] * scale * B_e A_e x[n],   e = expert[n, j].
// With k = 1 the gate is constantly 1, so the router receives no gradient from the loss (the
// official implementation's behaviour); a load-balancing loss (Switch Transformer) gives it one:
//   aux = E * sum_e f_e P_e,  f_e = share of the N * k routing slots given to expert e,
//   P_e = mean over the rows of softmax(logits)_e.
// Experts run grouped: the rows routed to an expert are gathered and go through two GEMMs, in
// the forward and in the backward (no per-row matrix-vector loops). One set of names for the
// inference forward (Decoder), the training forward and the backward (TrainEngine); templated on
// the scalar: float in the product, double in the gradient checks.
#pragma once
#include <cstdint>

namespace taia {

// One projection's experts and router; E = experts, r = rank.
template <typename T>
struct MoloraWeights {
  int64_t experts = 0, top_k = 0, rank = 0, in = 0, out = 0;
  T scale = 0;                  // alpha / r (rsLoRA: alpha / sqrt(r)), every expert's
  const T* A = nullptr;         // [E, r, in]
  const T* B = nullptr;         // [E, out, r]
  const T* router_w = nullptr;  // [E, in]
  const T* router_b = nullptr;  // [E]
};

// Their gradients (same shapes), accumulated (+=).
template <typename T>
struct MoloraGrads {
  T* dA = nullptr;
  T* dB = nullptr;
  T* d_router_w = nullptr;
  T* d_router_b = nullptr;
};

// The routing of N rows, written by the forward and read by the backward.
template <typename T>
struct MoloraRouting {
  T* logits = nullptr;        // [N, E] router logits
  int32_t* expert = nullptr;  // [N, k] the selected experts by decreasing logit (ties: the lower index)
  T* gate = nullptr;          // [N, k] softmax over the selected logits
  T* u = nullptr;             // [N, k, r] A_e x[n] of each selected expert
};

// y[N, out] += the experts' branches of x[N, in]; fills `routing`.
template <typename T>
void molora_forward(T* y, const MoloraRouting<T>& routing, const T* x, const MoloraWeights<T>& w, int64_t N);

// The gradients for dy[N, out]: dx[N, in] += (dx may be null), g += (experts and router). With
// balance_weight != 0 the gradient of balance_weight * aux is added too. Returns aux.
// rows_counted [N] (null: every row): the rows aux is taken over (f and P of the real tokens,
// padding left out, as HF's Mixtral masks them); the experts' gradients take every row.
template <typename T>
double molora_backward(T* dx, const MoloraGrads<T>& g, const T* dy, const T* x, const MoloraRouting<T>& routing,
                       const MoloraWeights<T>& w, int64_t N, double balance_weight,
                       const uint8_t* rows_counted = nullptr);

// aux (above) of a routing, over rows_counted (null: every row; none counted: 0).
template <typename T>
double molora_balance_loss(const MoloraRouting<T>& routing, const MoloraWeights<T>& w, int64_t N,
                           const uint8_t* rows_counted = nullptr);

// Floats of scratch the kernels hold (per-expert gathers, d_logits) for N rows: for memory estimates.
inline int64_t molora_scratch_floats(int64_t N, int64_t experts, int64_t top_k, int64_t rank, int64_t in, int64_t out) {
  return N * (2 * in + out + 2 * rank + experts + top_k);
}

// counts[E] += the routing slots each expert received; with rows_counted [slots / top_k], only
// the slots of counted rows.
void molora_count_slots(int64_t* counts, const int32_t* expert, int64_t experts, int64_t slots,
                        const uint8_t* rows_counted = nullptr, int64_t top_k = 1);

}  // namespace taia
