// Inference forward pass of the decoder, every architecture: embedding, each layer's recipe
// (model/layer_recipe.h: norm -> GQA attention with its rotary -> residual -> norm -> gated MLP
// -> residual), final norm and LM head, over a KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "model/decode_profile.h"
#include "model/kv_cache.h"
#include "model/layer_recipe.h"
#include "model/lora.h"
#include "model/weights.h"

namespace taia {

// Rows of several sequences in one forward pass, each row with its own position (RoPE), the
// cache slot its key/value go to and the cache rows it attends to. Used to score several
// answer options after one shared question (the question's rows once, the options attending to
// them and to themselves), and to run several prompts or decode steps in one pass.
struct PackedBatch {
  std::vector<int32_t> tokens;      // [T]
  std::vector<int64_t> positions;   // [T] position ids
  std::vector<int64_t> slots;       // [T] cache row written by each token (distinct)
  std::vector<KeySpans> spans;      // [T] cache rows each token attends to (its own slot included)
  std::vector<int64_t> logit_rows;  // rows whose logits are wanted, increasing

  // Appends one row; returns its index.
  int64_t add(int32_t token, int64_t position, int64_t slot, const KeySpans& attend);
  int64_t size() const { return int64_t(tokens.size()); }
  void clear();
};

// Scratch activations, sized for the largest batch of positions seen so far.
struct RunState {
  std::vector<float> x;      // [T, D] residual stream
  std::vector<float> xn;     // [T, D] normalised input of a sub-layer
  std::vector<float> q;      // [T, H*hd]
  std::vector<float> att;    // [T, H*hd] attention output before o_proj
  std::vector<float> gate;   // [T, I]
  std::vector<float> up;     // [T, I]
  std::vector<float> k, v;   // [T, KV] new keys/values before they go to their cache slots
  std::vector<float> block_out;  // [T, D] an attention / FFN output before it joins x (sandwich norms, observers)
  std::vector<float> inv_freq;        // [rotary_dims/2]
  std::vector<float> inv_freq_long;   // [rotary_dims/2] LongRope's long factors, else empty
  std::vector<float> inv_freq_local;  // [rotary_dims/2] Gemma 3's local layers (rope_local_theta), else empty
};

// How a Decoder computes, the settings of every command that runs a model (--compute,
// --exact-activations, --kv-dtype; tools/cli/common.h declares them once).
// One row's adapter and mode in a packed batch (Decoder::set_row_adapters).
struct RowAdapter {
  const LoraAdapter* adapter = nullptr;  // nullptr: the base
  ModuleMask mask{};
  bool operator==(const RowAdapter& o) const { return adapter == o.adapter && mask == o.mask; }
};

struct DecoderSettings {
  Precision precision = Precision::F32;
  bool exact_activations = false;
  DType kv_dtype = DType::F32;
};

class Decoder {
 public:
  explicit Decoder(const Model& model);

  // Runs tokens[T] at positions cache.length() .. +T-1, appends their keys/values to the cache.
  // logits: [T, V] if all_logits, else [V] for the last position only. A cache with rings runs
  // in calls of at most its rows_per_call rows.
  void forward(KVCache& cache, const int32_t* tokens, int64_t T, float* logits, bool all_logits);

  // Runs a packed batch; the cache's length is left alone (slots are managed by the caller).
  // logits: [batch.logit_rows.size(), V].
  void forward_packed(KVCache& cache, const PackedBatch& batch, float* logits);

  const Model& model() const { return model_; }

  // Wall seconds spent in forward_packed since construction (every forward goes through it):
  // what `taia eval` counts as time inside the model.
  double busy_seconds() const { return busy_seconds_; }

  // Runs with the adapter's modules in `mask` applied unmerged (y += scale * B A x); switching
  // modes needs no reload. nullptr or an empty mask: the base model.
  void set_adapter(const LoraAdapter* adapter, const ModuleMask& mask);
  // Per-row adapters and modes for the following forward_packed calls (`taia serve`: one pass
  // for a batch whose rows use different adapters and modes): the base projections run once for
  // every row; each run of consecutive rows with the same adapter and mode adds that adapter's
  // modules (LoRA or MoLoRA) for its rows, so rows grouped by adapter make fewer, larger
  // products. Overrides set_adapter while set; nullptr: off.
  void set_row_adapters(const std::vector<RowAdapter>* rows);

  // From now on, fn(layer, p, out, T) sees each sub-layer's output out [T, D] before it joins the
  // residual stream: p = O (the attention block) or Down (the FFN), after the sandwich norm where
  // the model has one (`taia analyze`). nullptr stops it.
  using SublayerObserver = std::function<void(int64_t layer, Proj p, const float* out, int64_t T)>;
  void observe_sublayers(SublayerObserver fn) { observer_ = std::move(fn); }
  // From now on, fn(layer, hidden, T, I) sees each FFN's hidden activations hidden [T, I] (the
  // input of down_proj: act(gate) * up), one value per neuron and token (`taia analyze
  // --neurons`). nullptr stops it.
  using FfnHiddenObserver = std::function<void(int64_t layer, const float* hidden, int64_t T, int64_t I)>;
  void observe_ffn_hidden(FfnHiddenObserver fn) { ffn_observer_ = std::move(fn); }

  // MoLoRA: from now on, (*counts)[layer][p][e] += the routing slots expert e of projection p
  // receives (sized as needed); nullptr stops counting.
  using ExpertSlotCounts = std::vector<std::array<std::vector<int64_t>, kNumProj>>;
  void count_expert_slots(ExpertSlotCounts* counts) { expert_counts_ = counts; }

  // Precision::BF16 (--compute bf16): the base projections and the LM head multiply activations
  // rounded to BF16 (F32 sums), as llama.cpp and HF's bfloat16 models do; prefill then runs
  // BF16 GEMMs (twice the F32 rate). Needs BF16 weights (refused otherwise, naming the tensor).
  // F32 (the default): exact F32 products on the weights as stored. LoRA branches stay F32.
  void set_compute(Precision precision);
  // Decode rows on block-quantized weights (Q4_0 .. Q6_K files): by default activations quantized
  // to 8 bits per block and integer dot products, as llama.cpp computes them (kernels/quant_dot);
  // exact: F32 activations against the weights widened to F32 (--exact-activations). Prefill rows
  // multiply widened tiles either way (with the activations rounded to their 8-bit values unless
  // exact), so prefill and decode give the same logits up to F32 rounding.
  void set_exact_activations(bool exact);
  // The type the caches made for this decoder's runs store keys and values in (generate, eval,
  // bench: --kv-dtype; model/kv_cache.h): F32 unless set. Checked against the model here.
  void set_kv_dtype(DType dtype);
  DType kv_dtype() const { return kv_dtype_; }
  void configure(const DecoderSettings& s);  // the three above

  // From now on, each forward pass adds its steps' seconds and bytes read to *profile (`taia
  // bench decode --profile`); nullptr stops it.
  void profile(DecodeProfile* profile) { profile_ = profile; }

 private:
  enum class LogitRows { All, Last, None };
  void forward_rows(KVCache& cache, const int32_t* tokens, int64_t T, float* logits, LogitRows want);
  void project(int64_t layer, Proj p, const Linear& lin, float* y, const float* x, int64_t T, bool accumulate);
  // Projections of one input (q, k, v; gate, up) into ys[i]: the base products in one pass
  // (linear_forward_shared), then each one's LoRA branch.
  void project_shared(int64_t layer, const std::vector<Proj>& ps, const std::vector<const Linear*>& lins,
                      const std::vector<float*>& ys, const float* x, int64_t T);
  void add_lora(int64_t layer, Proj p, const Linear& lin, float* y, const float* x, int64_t T);
  struct AdapterRun {  // consecutive rows [begin, end) of a packed batch with one adapter applying p
    const LoraAdapter* adapter;
    int64_t begin, end;
  };
  static constexpr int64_t kRunsTogetherMaxRows = 64;  // steps up to this many rows: runs share a region
  void add_lora_runs_together(const std::vector<AdapterRun>& runs, int64_t layer, Proj p, const Linear& lin,
                              float* y, const float* x);
  void add_adapter_rows(const LoraAdapter& adapter, int64_t layer, Proj p, const Linear& lin, float* y,
                        const float* x, int64_t begin, int64_t end);
  static void add_lora_view_rows(const LoraView& m, float* y, const float* x, int64_t begin, int64_t end, float* u);
  void check_adapter(const LoraAdapter& adapter, const ModuleMask& mask) const;
  bool check_packed_batch(const KVCache& cache, const PackedBatch& b) const;
  void layer_forward(int64_t layer, KVCache& cache, const PackedBatch& b, bool contiguous);
  const KeySpans* layer_spans(int64_t layer, const KVCache& cache, const PackedBatch& b);
  static void map_spans_to_ring(std::vector<KeySpans>& spans, const PackedBatch& b, int64_t rows);
  void attend(int64_t layer, const KVCache& cache, const PackedBatch& b);
  void rotate(const LayerRecipe& r, float* q, float* k, const int64_t* positions, int64_t T);
  void sublayer_output(int64_t layer, const LayerRecipe& r, Proj p, const Linear& lin, const TensorView& out_norm,
                       const float* in, int64_t T);

  const Model& model_;
  ModelRecipe recipe_;  // the sub-steps of every layer (model/layer_recipe.h)
  RunState s_;
  DType kv_dtype_ = DType::F32;
  DecodeProfile* profile_ = nullptr;
  LinearCompute compute_;  // F32, or BF16 with bf16_; int8 activations on quantized weights unless exact
  Bf16Workspace bf16_;
  PackedBatch plain_;  // forward()'s rows
  const LoraAdapter* adapter_ = nullptr;
  ModuleMask mask_{};
  const std::vector<RowAdapter>* row_adapters_ = nullptr;  // [T] per-row adapters and modes, or none
  std::vector<float> lora_u_;  // [T, r]
  struct ExpertScratch {        // one MoLoRA projection's routing of T rows (k experts each)
    std::vector<float> logits;  // [T, E]
    std::vector<int32_t> expert;  // [T, k]
    std::vector<float> gate;    // [T, k]
    std::vector<float> u;       // [T, k, r]
  } experts_;
  ExpertSlotCounts* expert_counts_ = nullptr;
  SublayerObserver observer_;
  FfnHiddenObserver ffn_observer_;
  // [T] the batch's spans under the window of window_spans_for_ (0: not built), in the rows of a
  // ring of ring_rows_for_ rows (0: slots are rows).
  std::vector<KeySpans> window_spans_;
  int64_t window_spans_for_ = 0, ring_rows_for_ = 0;
  double busy_seconds_ = 0;
};

}  // namespace taia
