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
#include "demo/world.h"

namespace taia::demo {

// Everything a preset fixes before any result is seen (docs/REPRODUCTION.md records them).
struct Preset {
  std::string name;
  // world and pretraining corpus
  WorldSizes world;
  int64_t corpus_rounds = 0, sentences_per_doc = 8;
  int64_t retention_docs = 0;  // held-out pretraining documents scored for retention
  double filler = 0.15;
  // model (LLaMA architecture) and its tokenizer
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, max_positions = 256;
  // pretraining (full training from random initialisation)
  int64_t pretrain_steps = 0, pretrain_batch = 16, pretrain_max_length = 128;
  double pretrain_lr = 0;
  // fine-tuning
  std::vector<std::string> experiments;  // "facts-lora", "facts-full", "skill-lora", "skill-full"
  int64_t finetune_records = 0, finetune_steps = 0, finetune_batch = 16;
  double lora_lr = 0, full_lr = 0;
  int64_t lora_rank = 16;
  double lora_alpha = 32;
  std::vector<uint64_t> seeds;
  // evaluation
  std::vector<int64_t> shots;  // few-shot counts on the chat knowledge questions (log-likelihood; 0 always runs)
  int64_t skill_examples = 0, max_new_tokens = 16;
};

const std::vector<std::string>& preset_names();  // "default", "quick"
Preset preset_by_name(const std::string& name);

struct DemoOptions {
  std::string preset = "default";
  std::string out_dir = "taia-demo";
  std::string cache_dir;   // empty: $XDG_CACHE_HOME/taia or ~/.cache/taia
  std::string model_path;  // a user's model: no pretraining, retention on its own text
  uint64_t world_seed = 0;
  std::vector<uint64_t> seeds;           // empty: the preset's
  std::vector<std::string> experiments;  // empty: the preset's
  double noise = 0.0, mix = 0.0;
  int64_t finetune_steps = 0;  // 0: the preset's
  double lora_lr = 0, full_lr = 0;
  int threads = 0;
  bool progress = true;
};

// Runs the demo; log lines go to `log`. Returns the summary (also OUT/summary.json): the
// aggregated table, the pretrained model's plain-text accuracy, paths and settings.
Json run_demo(const DemoOptions& options, const std::function<void(const std::string&)>& log);

// Markdown table of a summary: one row per experiment and task, one column per mode,
// "mean ± std" over the seeds.
std::string demo_table_markdown(const Json& summary);

// The default cache folder ($XDG_CACHE_HOME/taia, else $HOME/.cache/taia).
std::string default_cache_dir();

}  // namespace taia::demo
