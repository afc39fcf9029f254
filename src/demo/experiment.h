// `taia demo`: the whole TAIA experiment on the generated world (demo/world.h), or the same
// fine-tune / evaluate flow on a user's model. Steps: world -> tokenizer + pretrained model
// (cached) -> out-of-distribution fine-tuning (LoRA on all seven projections, full fine-tuning)
// for several seeds -> eval of base / vanilla / taia / taif -> mean and standard deviation over
// seeds -> table, results.json and report.html. See docs/REPRODUCTION.md.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/presets.h"
#include "eval/aggregate_results.h"
#include "demo/world.h"

namespace taia::demo {

struct DemoOptions {
  std::string preset = "default";
  std::string scale;  // empty: the preset's model; "2m", "6m" or "16m": presets.h apply_scale
  std::string out_dir = "taia-demo";
  std::string cache_dir;   // empty: $XDG_CACHE_HOME/taia or ~/.cache/taia
  std::string model_path;  // a user's model: no pretraining, retention on its own text
  uint64_t world_seed = 0;
  std::vector<uint64_t> world_seeds;     // empty: the preset's worlds, or {world_seed}
  std::vector<uint64_t> seeds;           // empty: the preset's
  std::vector<std::string> experiments;  // empty: the preset's
  double noise = 0.0, mix = 0.0;
  int64_t finetune_steps = 0;  // 0: the preset's
  int64_t pretrain_steps = 0;  // 0: the preset's (another cache entry otherwise)
  // Design C's base: this many context dialogues in the pretraining corpus (presets.h; 0: none).
  int64_t context_dialogues = 0, context_people = 2, context_turns = 8;
  double lora_lr = 0, full_lr = 0;
  int threads = 0;
  bool progress = true;
  // "ranks": after the experiments, the first LoRA experiment again for every (attention rank,
  // FFN rank) in sweep_ranks x sweep_ranks and every seed (the paper's open rank-ratio question).
  std::string sweep;
  std::vector<int64_t> sweep_ranks{4, 16, 64};
  // "noise": the first LoRA experiment again for every share of wrong fine-tuning answers here and
  // every seed (the paper's open noise question; demo/noise_sweep.h).
  std::vector<double> sweep_noise{0, 0.1, 0.3, 0.5};
};

// OUT/summary.json: the aggregated table, the claims, the pretrained model's facts, settings.
struct DemoSummary {
  std::vector<AggregateRow> rows;
  std::vector<Claim> claims;
  Json pretrained;   // world_seed, chance_city, chance_job, model, plain_completion_acc / _stderr / _n, worlds
  Json settings;     // results.json's "settings" (shown as they are by the report)
  std::string out;   // the output folder
  double seconds = 0;
  Json to_json() const;
  static DemoSummary from_json(const Json& j, const std::string& where);
};

// Runs the demo; log lines go to `log`. Returns the summary (also OUT/summary.json).
DemoSummary run_demo(const DemoOptions& options, const std::function<void(const std::string&)>& log);

// Markdown table of a summary's rows: one row per experiment and task, one column per mode,
// "mean ± std" over the seeds.
std::string demo_table_markdown(const std::vector<AggregateRow>& rows);

}  // namespace taia::demo
