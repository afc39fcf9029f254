// What `taia bench` and bench/ time: prefill, decode and LoRA training steps on a loaded model,
// with the work each does (FLOPs, bytes read) so that rates can be set beside the machine's
// measured ceilings (perf/machine.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/linear.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "train/engine.h"

namespace taia {

// Called after each timed round with (rounds done, rounds in all), e.g. for a progress bar.
using RoundDone = std::function<void(int, int)>;

// Tokens/s of each round: a `tokens`-token prompt from an empty cache, logits of the last
// position only (as llama-bench's pp test); one untimed warm-up pass first.
// settings: Decoder::configure's (BF16 compute: BF16 weights only).
std::vector<double> measure_prefill(const Model& m, int64_t tokens, int rounds, const RoundDone& done = {},
                                    const DecoderSettings& settings = {});

// Tokens/s of each round: `tokens` one-token steps (greedy) after an untimed `depth`-token
// prompt (depth 0: from an empty cache, as llama-bench's tg test); one untimed warm-up round.
std::vector<double> measure_decode(const Model& m, int64_t depth, int64_t tokens, int rounds,
                                   const RoundDone& done = {}, const DecoderSettings& settings = {},
                                   DecodeProfile* profile = nullptr);  // the timed rounds' steps, when given

struct TrainBenchOptions {
  int64_t batch = 4, seq = 256;  // sequences x tokens per step (random tokens, next-token targets)
  int64_t rank = 8;              // LoRA rank (alpha 2 x rank, no dropout) on all seven projections
  bool compute_bf16 = false;     // --compute bf16: frozen base products in BF16
  bool recompute = false;        // --recompute: only layer inputs kept, layers rerun in backward
  // MoLoRA (experts > 0): `experts` LoRA experts of the same rank, top_k per token, on gate / up /
  // down instead of their LoRA; attention keeps LoRA.
  int64_t experts = 0, top_k = 1;
};

// A [batch, seq] batch of random tokens (seed 3), each targeting the next (none for the last).
TrainBatch random_train_batch(int64_t vocab, int64_t batch, int64_t seq);

// Where the timed training steps' time went (`taia bench train --profile`): the engine's phases
// (TrainEngine's PhaseTimes: base GEMMs, LoRA, attention, norms, elementwise, LM head + loss), the
// optimizer (zeroing the gradients and AdamW), and the steps' whole wall time (what no phase
// covers, e.g. the embedding's backward, is the difference).
struct TrainProfile {
  PhaseTimes phases;
  double optimizer_seconds = 0.0;
  double step_seconds = 0.0;
  int steps = 0;
};

// Tokens/s of each of `steps` LoRA (or MoLoRA) steps (forward, backward, AdamW), after two untimed
// ones; with a profile, the timed steps' time by phase (a clock read around each phase).
std::vector<double> measure_train(Model& m, const TrainBenchOptions& o, int steps, const RoundDone& done = {},
                                  TrainProfile* profile = nullptr);

// Matrix-product FLOPs of a T-token prefill: the projections, causal attention (QK^T and AV over
// the positions each row sees) and the LM head for the last row.
double prefill_flops(const ModelConfig& c, int64_t T);
// FLOPs the training benchmark credits a step with: twice the forward's matrix products
// (projections, LoRA branches, full T x T attention, LM head), the PyTorch peer's formula; with
// MoLoRA each FFN projection's k experts and its router instead of its LoRA branch.
double train_step_flops(const ModelConfig& c, const TrainBenchOptions& o);
// Bytes one decode step reads at context length ctx: every weight as stored (one embedding row
// unless the embedding is also the LM head) and the keys and values of ctx positions, stored as
// kv_dtype.
double decode_bytes_per_token(const Model& m, int64_t ctx, DType kv_dtype = DType::F32);

// The median (the mean of the two middle values for an even count).
double median_of(std::vector<double> v);

}  // namespace taia
