// Training forward and backward pass of the decoder, with LoRA branches and/or full
// weight gradients. Per layer the activations backward needs are kept, or (recompute) only
// the layer input is kept and the layer is run again during backward.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/linear.h"
#include "kernels/rope.h"
#include "model/weights.h"
#include "model/lora.h"

namespace taia {

// B sequences of length L (padded); targets[i] = the id to predict at position i, -1 = no loss.
struct TrainBatch {
  int64_t B = 0, L = 0;
  std::vector<int32_t> tokens;   // [B*L]
  std::vector<int32_t> targets;  // [B*L]
  int64_t target_count() const;
};

// Full fine-tuning gradients by HF tensor name (only the trainable tensors are present).
struct FullGrads {
  std::map<std::string, std::vector<float>> by_name;
  float* find(const std::string& name);
  void zero();
};

// Gradient buffers for full fine-tuning: the weights (and biases) of the targeted projections;
// with all seven targeted, also embeddings, norms and the LM head (every weight trains).
FullGrads make_full_grads(const Model& model, const std::array<bool, kNumProj>& targets);

// Where a step's time goes, for benchmarks (EngineOptions::profile): wall seconds per phase,
// summed over calls since the last reset.
enum class Phase { BaseGemm, Lora, Attention, Norm, Elementwise, HeadLoss, Count };
const char* phase_name(Phase p);
struct PhaseTimes {
  std::array<double, size_t(Phase::Count)> seconds{};
};

struct EngineOptions {
  bool recompute = false;      // per-layer activation recomputation
  uint64_t dropout_seed = 0;   // LoRA dropout masks are a pure function of (seed, step, place)
  // Mixed precision (LoRA only): the frozen base projections and LM head multiply in BF16
  // (activations rounded to BF16, F32 accumulation), as torch autocast does; LoRA branches,
  // norms, attention, softmax and the loss stay F32.
  bool compute_bf16 = false;
  bool profile = false;  // accumulate PhaseTimes (a clock read around each phase)
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

  // Bytes of working memory (activations, scratch, folded LoRA weights, BF16 copies) that a
  // batch of B sequences of length L needs, by the same formulas as the buffers themselves.
  const PhaseTimes& phase_times() const { return phase_times_; }
  void reset_phase_times() { phase_times_ = PhaseTimes{}; }

  static int64_t working_bytes(const ModelConfig& c, int64_t B, int64_t L, const EngineOptions& options,
                               const LoraAdapter* lora, bool full);

 private:
  struct LayerActs {
    std::vector<float> x_in, ln1, rstd1, q, k, v, probs, att, x_mid, ln2, rstd2, gate, up, h;
    std::array<std::vector<float>, kNumProj> lora_u;  // [N, r] per adapted projection
    // Without dropout the LoRA branch folds into the weight: w_eff = W + scale B A [out, in] (F32),
    // one large GEMM per projection forward and backward instead of four skinny ones.
    std::array<std::vector<float>, kNumProj> w_eff;
  };
  double run(const TrainBatch& batch, bool backward, float grad_scale, uint64_t step);
  void layer_forward(int64_t l, LayerActs& a, const float* x_in, float* x_out, bool train, uint64_t step);
  void layer_backward(int64_t l, LayerActs& a, float* dx, uint64_t step);
  void proj_forward(int64_t l, Proj p, float* y, const float* x, int64_t N, LayerActs& a, bool train, uint64_t step,
                    bool accumulate);
  // dx may be null: the projection's input needs no gradient (its LoRA / weight gradients still do).
  void proj_backward(int64_t l, Proj p, float* dx, const float* dy, const float* x, int64_t N, LayerActs& a,
                     uint64_t step);
  const Linear& base(int64_t l, Proj p) const;
  static void lora_down(std::vector<float>& u, const float* x, const LoraModule& m, int64_t N);
  void resize(const TrainBatch& batch);
  double* phase_slot(Phase p) { return options_.profile ? &phase_times_.seconds[size_t(p)] : nullptr; }

  const Model& model_;
  LoraAdapter* lora_;
  FullGrads* grads_;
  EngineOptions options_;
  PhaseTimes phase_times_;
  std::vector<float> inv_freq_;
  RopeTable rope_;  // cos/sin for positions 0..L-1
  int64_t B_ = 0, L_ = 0, N_ = 0;
  std::vector<int64_t> positions_;
  std::vector<LayerActs> acts_;          // one per layer, or one scratch set with recompute
  std::vector<std::vector<float>> x_in_; // per layer inputs (recompute mode)
  Bf16Workspace bf16_;     // BF16 copies of the frozen weights, rounded activations (--compute bf16)
  LinearCompute compute_;  // the precision of the frozen-base and LM-head products
  std::vector<float> x_, lnf_, rstdf_;
  std::vector<float> scratch_in_, scratch_in2_, scratch_r_, dbuf_a_, dbuf_b_, dbuf_c_, dbuf_q_, dbuf_k_, dbuf_v_,
      dbuf_gate_, dbuf_up_, logits_, scratch_bt_, scratch_du_;
};

}  // namespace taia
