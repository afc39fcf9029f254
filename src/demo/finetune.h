// One fine-tuning run of the demo: an out-of-distribution fine-tuning set for a seed, LoRA, MoLoRA
// or full fine-tuning of the base, and the evaluation of the result in the vanilla, taia and taif
// modes (LoRA: the adapter applied unmerged; full: the fine-tuned model merged module by module
// with the base).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "demo/scores.h"
#include "model/weights.h"
#include "train/trainer.h"

namespace taia::demo {

// What every run of a demo shares.
struct RunContext {
  const World* world = nullptr;
  const Preset* preset = nullptr;
  double noise = 0, mix = 0;       // shares of wrong answers and of in-distribution records
  std::string base_path;           // the base model's folder
  const Model* base = nullptr;     // the base, loaded once
  const Tokenizer* tok = nullptr;
  const TaskSet* tasks = nullptr;
  EvalRun eval;
  std::string out_dir;             // OUT/runs/EXPERIMENT/seedN go under it
  int threads = 0;
  bool progress = true;
  // Held-out text (the retention documents, tokenized) on which each run's drift is measured:
  // per layer, how far the attention and FFN outputs move from the base's in each mode.
  std::vector<std::vector<int32_t>> drift_text;
  bool controls = true;  // the update-size controls (off in sweeps: their runs answer another question)
};

// The update-size controls the demo compares TAIA with (docs/REPRODUCTION.md): scaled, three
// random-half draws (scored each, reported as their mean under kRandomHalfMode) and, for LoRA
// runs, early: the run's own checkpoint (one every early_every(steps) steps: about 30 in a run)
// whose whole update norm is nearest the norm of TAIA's kept update, run as vanilla.
const std::vector<std::string>& demo_control_modes();   // scaled, random-half-1, -2, -3
const std::vector<std::string>& random_half_draws();    // random-half-1, -2, -3
inline constexpr const char* kRandomHalfMode = "random-half";
inline constexpr const char* kEarlyMode = "early";
inline int64_t early_every(int64_t steps) { return std::max<int64_t>(1, steps / 30); }

struct RunResult {
  Scores scores;         // vanilla / taia / taif / the controls per task
  Json updates = Json::object();  // control -> what it kept (describe_mode_weights; early: its step and norms)
  Json drift;            // mode -> drift_json (eval/drift.h) on ctx.drift_text
  TrainSummary training;
  std::string train_dir;  // adapter or model folder with metrics.jsonl
};

// LoRA ranks for the attention (q, k, v, o) and the FFN (gate, up, down) projections apart
// (alpha = 2 x rank for each, the preset's scale): the rank-ratio sweep.
struct SplitRanks {
  int64_t attention = 0, ffn = 0;
};

// experiment = KIND-METHOD: KIND facts, skill or country (world.h's fine-tuning sets), METHOD lora,
// molora (4 experts, top-1, the official settings, on the FFN; LoRA on attention) or full.
// ranks (LoRA only): the sweep's split ranks; the run goes to runs/sweep/EXPERIMENT-aA-fF/seedN.
RunResult finetune_and_evaluate(const RunContext& ctx, const std::string& experiment, uint64_t seed,
                                const SplitRanks* ranks = nullptr);

}  // namespace taia::demo
