// Training forward and backward pass of the decoder, every architecture through its layer
// recipe (model/layer_recipe.h), with LoRA branches and/or full weight gradients. Per layer the activations backward needs are kept, or (recompute) only
// the layer input is kept and the layer is run again during backward.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/linear_cross_entropy.h"
#include "kernels/molora.h"
#include "kernels/rope.h"
#include "model/layer_recipe.h"
#include "model/weights.h"
#include "model/lora.h"

namespace taia {

// B sequences of length L (padded); targets[i] = the id to predict at position i, -1 = no loss.
struct TrainBatch {
  int64_t B = 0, L = 0;
  std::vector<int32_t> tokens;   // [B*L]
  std::vector<int32_t> targets;  // [B*L]
  // [B] tokens of each sequence before its padding; empty: no padding. Padding rows stay out of
  // MoLoRA's balance loss (as HF's Mixtral masks them with the attention mask).
  std::vector<int64_t> lengths;
  // [B] each sequence's index in its data set: keys its tokens' LoRA dropout masks, so that a
  // token's mask does not depend on the micro-batch or rank it lands in. Empty: the row index.
  std::vector<int64_t> sequence_ids;
  int64_t target_count() const;
};

// Full fine-tuning gradients by HF tensor name (only the trainable tensors are present;
// train/trainable.h decides which).
struct FullGrads {
  std::map<std::string, std::vector<float>> by_name;
  float* find(const std::string& name);
  void zero();
};

// Where a step's time goes, for benchmarks (EngineOptions::profile): wall seconds per phase,
// summed over calls since the last reset. Widen is the widening of BF16 / F16 / quantized weight
// tiles to F32 inside the base GEMMs' and the head's products, counted there and not in them.
enum class Phase { BaseGemm, Lora, Attention, Norm, Elementwise, HeadLoss, Widen, Count };
const char* phase_name(Phase p);
struct PhaseTimes {
  std::array<double, size_t(Phase::Count)> seconds{};
};
// A phase's clock: its seconds, and the widening seconds that accrue inside it and are kept out
// of it (both null when not profiling).
struct PhaseSlot {
  double* seconds = nullptr;
  const double* nested = nullptr;
};

struct EngineOptions {
  bool recompute = false;      // per-layer activation recomputation
  uint64_t dropout_seed = 0;   // LoRA dropout masks are a pure function of (seed, step, place)
  // Mixed precision (LoRA only): the frozen base projections and LM head multiply in BF16
  // (activations rounded to BF16, F32 accumulation), as torch autocast does; LoRA branches,
  // norms, attention, softmax and the loss stay F32.
  bool compute_bf16 = false;
  bool profile = false;  // accumulate PhaseTimes (a clock read around each phase)
  // forward_loss will run (validation). With LoRA dropout it multiplies through the folded
  // weights W + s B A, which are then planned too; without this flag it runs the unfolded branch.
  bool validation = false;
};

class TrainEngine {
 public:
  // model weights must be F32 where full gradients are requested. lora / grads may be null.
  TrainEngine(const Model& model, LoraAdapter* lora, FullGrads* grads, const EngineOptions& options);

  // Forward + backward; gradients accumulate (+=) with the loss scaled by grad_scale (e.g.
  // 1 / target tokens). Returns the summed (unscaled) loss over the targets. `step` varies the
  // dropout masks between steps.
  double forward_backward(const TrainBatch& batch, float grad_scale, uint64_t step);
  // Forward only (no dropout): summed loss over the targets.
  double forward_loss(const TrainBatch& batch);
  // Called in forward_backward after each layer's backward (layers L-1 down to 0) with the layer's
  // index: that layer's gradients are not written again in the pass, so the data-parallel trainer
  // can start summing them over the ranks while the earlier layers run. Empty: none.
  void set_layer_backward_hook(std::function<void(int64_t layer)> hook) { layer_hook_ = std::move(hook); }

  // MoLoRA routers over the backward passes since the last reset: the balance loss (aux of
  // kernels/molora.h) summed over routers and passes, and the routing slots each expert index
  // received, summed over routers.
  struct RouterStats {
    double balance_loss = 0;
    int64_t passes = 0;                   // router backward passes counted
    std::vector<int64_t> slots_per_expert;  // [E]
  };
  const RouterStats& router_stats() const { return router_stats_; }
  void reset_router_stats() { router_stats_ = RouterStats{}; }

  const PhaseTimes& phase_times() const { return phase_times_; }
  void reset_phase_times() { phase_times_ = PhaseTimes{}; }

  TrainEngine(const TrainEngine&) = delete;  // compute_ points into this object
  TrainEngine& operator=(const TrainEngine&) = delete;

  // Bytes of working memory that a batch of B sequences of length L needs: the buffers
  // resize() allocates (activations, gradient scratch, folded LoRA weights), added up, plus the
  // kernels' own scratch (kernel_scratch_bytes).
  static int64_t working_bytes(const Model& model, int64_t B, int64_t L, const EngineOptions& options,
                               const LoraAdapter* lora, bool full);

  // Bytes the planned buffers hold now (their capacities). After a step on a B x L batch it is
  // working_bytes(B, L) less kernel_scratch_bytes, as the tests check. Call it after a step
  // (before one it sizes the plan's containers).
  int64_t allocated_bytes();

  // Scratch outside the plan, estimated: the BF16 workspace of --compute bf16 (copies of the
  // frozen F32 weights, rounded activations), the attention backward's per-thread L x L block,
  // and the F32 block a BF16 weight is widened into under F32 compute.
  // With MoLoRA experts (lora), their kernels' per-expert gathers too.
  static int64_t kernel_scratch_bytes(const Model& model, int64_t B, int64_t L, const EngineOptions& options,
                                      const LoraAdapter* lora = nullptr);

 private:
  // Saved forward activations of one layer; N = B x L rows, D hidden, H / KV heads of hd,
  // I intermediate.
  struct LayerActs {
    std::vector<float> x_in;   // [N, D] the layer's input (residual stream)
    std::vector<float> ln1;    // [N, D] attention-norm output
    std::vector<float> rstd1;  // [N] its 1 / rms
    std::vector<float> q;      // [N, H * hd] after RoPE
    std::vector<float> k, v;   // [N, KV * hd] (k after RoPE)
    std::vector<float> q_raw, k_raw;    // [N, H * hd], [N, KV * hd] projections before QK-norm (Qwen3; else empty)
    std::vector<float> rstd_q, rstd_k;  // [N * H], [N * KV] their 1 / rms per head
    // Sandwich norms (Gemma 2): the o / down projections' outputs before their norms, and rstd.
    std::vector<float> attn_out, ffn_out;            // [N, D] (else empty)
    std::vector<float> rstd_attn_out, rstd_ffn_out;  // [N]
    std::vector<float> probs;  // [B, H, L, L] attention probabilities
    std::vector<float> att;    // [N, H * hd] attention output
    std::vector<float> x_mid;  // [N, D] residual after the attention block
    std::vector<float> ln2;    // [N, D] FFN-norm output
    std::vector<float> rstd2;  // [N]
    std::vector<float> gate, up, h;  // [N, I]; h = silu(gate) * up
    std::array<std::vector<float>, kNumProj> lora_u;  // [N, r] = x A^T of each adapted projection
    // Without dropout the LoRA branch folds into the weight: w_eff = W + scale B A [out, in] (F32),
    // one large GEMM per projection forward and backward instead of four skinny ones.
    std::array<std::vector<float>, kNumProj> w_eff;
    // MoLoRA: each projection's routing (kernels/molora.h), k experts per row of E.
    struct ExpertActs {
      std::vector<float> logits;    // [N, E]
      std::vector<int32_t> expert;  // [N, k]
      std::vector<float> gate;      // [N, k]
      std::vector<float> u;         // [N, k, r]
      MoloraRouting<float> routing() {
        return {logits.data(), expert.data(), gate.data(), u.data()};
      }
    };
    std::array<ExpertActs, kNumProj> experts;
  };
  // The gradients of one backward pass, one buffer per meaning.
  struct GradScratch {
    std::vector<float> d_residual;  // [N, D] the residual stream's gradient, from the head down to layer 0
    std::vector<float> d_norm_out;  // [N, D] at the output of the norm being back-propagated (final, FFN, attention)
    std::vector<float> d_h;         // [N, I] at the SwiGLU output
    std::vector<float> d_gate, d_up;  // [N, I]
    std::vector<float> d_att;       // [N, H * hd] at the attention output
    std::vector<float> d_q;         // [N, H * hd]
    std::vector<float> d_k, d_v;    // [N, KV * hd]
    std::vector<float> d_q_raw, d_k_raw;  // [N, H * hd], [N, KV * hd] before QK-norm (Qwen3; else empty)
    std::vector<float> d_sublayer_out;    // [N, D] at an o / down output before its norm (sandwich norms; else empty)
    std::vector<float> lora_x_dropped;    // [N, in] a LoRA branch's input under its dropout mask (dropout > 0)
    std::vector<float> lora_d_x_dropped;  // [N, in] the branch's input gradient before the mask (dropout > 0)
    std::vector<float> lora_dBt;          // [r, out] dB transposed
    std::vector<float> lora_du;           // [N, r] = scale dy B
  };
  // Every working buffer, allocated by one plan (plan_buffers).
  struct Buffers {
    std::vector<LayerActs> acts;                   // one per layer, or one scratch set with recompute
    std::vector<std::vector<float>> saved_inputs;  // [layers][N, D] layer inputs (recompute only)
    std::vector<float> x;       // [N, D] residual stream
    std::vector<float> lnf;     // [N, D] final-norm output
    std::vector<float> rstdf;   // [N]
    std::vector<float> logits;  // [chunk, V] one row chunk of logits, then of their gradient (unfused head only)
    std::vector<float> recomputed_out;  // [N, D] a recomputed layer's output, not needed again (recompute only)
    std::vector<float> sublayer_normed; // [N, D] an o / down output after its norm (sandwich norms; else empty)
    std::vector<float> logits_capped;   // [chunk, V] the soft-capped logits of a chunk (final soft-cap; else empty)
    GradScratch grad;
  };
  struct PlanShape {
    const ModelConfig* config = nullptr;
    const ModelRecipe* recipe = nullptr;
    int64_t B = 0, L = 0;
    const EngineOptions* options = nullptr;
    const LoraAdapter* lora = nullptr;  // null without LoRA
    // LoRA may fold into the weight (w_eff = W + s B A): not over a quantized base, whose
    // projections would then be held whole in F32.
    bool fold_allowed = true;
    // The LM head and loss run fused over vocabulary chunks (kernels/linear_cross_entropy): no
    // logits rows are planned; its scratch is the kernel's (kernel_scratch_bytes).
    bool fused_head = false;
  };
  // Whether the head runs fused: a frozen head (its weight gradient needs the whole softmax first)
  // and no final soft-cap.
  static bool fused_head(const ModelRecipe& recipe, bool head_trains) { return !head_trains && recipe.final_softcap <= 0; }
  // Calls size(buffer, floats) for every buffer of `b` that a batch shape needs: resize()
  // allocates by it and working_bytes() adds it up, so the estimate cannot drift.
  template <typename Fn>
  static void plan_buffers(Buffers& b, const PlanShape& s, Fn&& size);
  // plan_buffers' parts: one layer's saved activations, the adapter's (LoRA u, folded weights,
  // MoLoRA routing) of the layers a set serves, and the backward scratch.
  template <typename Fn>
  static void plan_layer_acts(LayerActs& a, int64_t set, const PlanShape& s, Fn&& size);
  template <typename Fn>
  static void plan_adapter_acts(LayerActs& a, int64_t set, const PlanShape& s, Fn&& size);
  template <typename Fn>
  static void plan_grad_scratch(GradScratch& g, const PlanShape& s, Fn&& size);

  double run(const TrainBatch& batch, bool backward, float grad_scale, uint64_t step);
  void embed(const TrainBatch& batch);
  double head_and_loss(const TrainBatch& batch, bool backward, float grad_scale);
  void layer_forward(int64_t l, LayerActs& a, const float* x_in, float* x_out, bool train, uint64_t step);
  void norm_forward(const NormStep& n, float* y, float* rstd, const float* x, const TensorView& weight, int64_t rows,
                    int64_t dim);
  void norm_backward(const NormStep& n, float* dx, float* d_weight, const float* dy, const float* x,
                     const TensorView& weight, const float* rstd, int64_t rows, int64_t dim);
  const RopeTable* layer_rope(const LayerRecipe& r) const;
  void sublayer_forward(int64_t l, const LayerRecipe& r, Proj p, LayerActs& a, const float* in, const float* x_res,
                        float* x_out, std::vector<float>& pre, std::vector<float>& rstd, const TensorView& out_norm,
                        bool train, uint64_t step);
  float* norm_grad(int64_t l, LayerNorm n);
  const float* sublayer_backward_norm(int64_t l, const LayerRecipe& r, LayerNorm n, const float* d_residual,
                                      const std::vector<float>& pre, const std::vector<float>& rstd,
                                      const TensorView& out_norm);
  void layer_backward(int64_t l, LayerActs& a, float* d_residual, uint64_t step);
  void ffn_backward(int64_t l, const LayerRecipe& r, LayerActs& a, float* d_residual, uint64_t step);
  void attention_block_backward(int64_t l, const LayerRecipe& r, LayerActs& a, float* d_residual, uint64_t step);
  void embedding_backward(const TrainBatch& batch);
  void proj_forward(int64_t l, Proj p, float* y, const float* x, int64_t N, LayerActs& a, bool train, uint64_t step,
                    bool accumulate);
  // dx may be null: the projection's input needs no gradient (its LoRA / weight gradients still do).
  void proj_backward(int64_t l, Proj p, float* dx, const float* dy, const float* x, int64_t N, LayerActs& a,
                     uint64_t step);
  void lora_backward(int64_t l, Proj p, const LoraView& m, float* dx, const float* dy, const float* x, int64_t N,
                     LayerActs& a, uint64_t step, bool folded);
  const Linear& base(int64_t l, Proj p) const;
  static void lora_down(float* u, const float* x, const LoraView& m, int64_t N);
  // p's mixture of experts (MoLoRA), if the adapter has one there.
  MoloraModule* experts_of(int64_t l, Proj p) { return lora_ ? lora_->molora.find(l, p) : nullptr; }
  // p's view of the LoRA module covering it (a fused module's rows for Phi-3), if any.
  std::optional<LoraView> lora_view(int64_t l, Proj p);
  // The place that keys p's dropout mask: a fused group's projections share their module's input mask.
  int dropout_place(Proj p) const;
  void resize(const TrainBatch& batch);
  PhaseSlot phase_slot(Phase p) {
    if (!options_.profile) return {};
    return {&phase_times_.seconds[size_t(p)], &phase_times_.seconds[size_t(Phase::Widen)]};
  }

  const Model& model_;
  ModelRecipe recipe_;  // the sub-steps of every layer (model/layer_recipe.h)
  LoraAdapter* lora_;
  FullGrads* grads_;
  EngineOptions options_;
  PhaseTimes phase_times_;
  RouterStats router_stats_;
  std::function<void(int64_t)> layer_hook_;
  // The balance loss's weight in this backward pass: the coefficient times grad_scale times the
  // batch's target tokens. With grad_scale = 1 / (the step's target tokens) each micro-batch's aux
  // counts by its share of the step's tokens, and coef * that mean is added to the step's loss.
  double balance_weight_ = 0;
  std::vector<float> inv_freq_;
  std::vector<float> inv_freq_long_;   // LongRope's long factors, else empty
  RopeTable rope_;        // cos/sin for positions 0..L-1
  bool rope_long_factors_ = false;  // rope_ holds LongRope's long factors
  bool fold_allowed_ = true;        // PlanShape::fold_allowed for this model
  bool fused_head_ = false;         // PlanShape::fused_head for this engine
  std::vector<float> inv_freq_local_;  // Gemma 3's local layers (rope_local_theta), else empty
  RopeTable rope_local_;  // their cos/sin
  int64_t B_ = 0, L_ = 0, N_ = 0;
  std::vector<int64_t> positions_;  // [N] position of each row within its sequence
  std::vector<uint8_t> row_real_;   // [N] 1 where the row is a token of its sequence, 0 on padding
  std::vector<uint64_t> dropout_row_keys_;  // [N] (sequence id << 24) + position: keys the dropout masks
  Buffers buf_;
  Bf16Workspace bf16_;     // BF16 copies of the frozen weights, rounded activations (--compute bf16)
  LinearCrossEntropyScratch head_scratch_;  // the fused LM head's tiles and running softmax
  LinearCompute compute_;  // the precision of the frozen-base and LM-head products
};

// One optimizer step's micro-batches (those of this rank): forward and backward of each, every
// target token weighing 1 / step_targets, the step's target tokens over all its micro-batches
// on every rank. The gradients accumulate (+=) to those of the step's token-mean loss however the
// step is split into micro-batches and ranks (a per-micro-batch mean would weigh a short
// micro-batch's tokens more). `last_pass_hook` (may be empty) is the layer hook of the last pass
// (set_layer_backward_hook). Returns the summed loss over these micro-batches' targets.
double accumulate_step_gradients(TrainEngine& engine, const std::vector<TrainBatch>& micro, int64_t step_targets,
                                 uint64_t step, const std::function<void(int64_t layer)>& last_pass_hook = {});

}  // namespace taia
