// `taia eval`: every task in every mode (base / vanilla / taia / taif / module lists) on one
// loaded model, switching the adapter's modules unmerged between modes. Writes
// RUN_DIR/results.json and RUN_DIR/samples/TASK.MODE.jsonl (see docs/EVAL.md).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/tasks.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "tokenizer/chat_template.h"

namespace taia {

enum class McMethod { Loglik, Letter };

struct EvalSettings {
  std::vector<std::string> modes{"base"};
  std::vector<int64_t> shots{0};
  int64_t limit = 0;        // 0: every example
  int64_t batch_size = 8;   // examples per forward pass
  bool chat = true;         // prompts through the chat template when the tokenizer has one
  std::string chat_template;  // a name forces that template
  McMethod mc_method = McMethod::Loglik;
  int64_t max_new_tokens = 256;  // generative replies
  int64_t refusal_tokens = 64;   // refusal replies
  int64_t max_length = 1024;     // perplexity window (cut to the model's positions)
  // Perplexity windows: "disjoint" (every token but the first predicted once, within its window)
  // or "llama-cpp" (llama-perplexity's: BOS-led chunks, the second half of each scored).
  std::string perplexity_windows = "disjoint";
  std::string fewshot_file;      // demonstrations; else TASK's train split, else the task itself
  uint64_t seed = 1234;          // few-shot sampling
  std::vector<std::string> refusal_phrases;  // empty: default_refusal_phrases()
  bool second_pass = true;       // no answer found: append " The answer is" and continue
  bool progress = true;
};

// One (task, shots) entry's score in one mode.
struct ModeScore {
  Json entry;                  // metric, value, stderr, n, ... (a results.json leaf)
  std::vector<Json> samples;   // one per example
};

// The log lines (timings, examples/s) go to `log`.
Json run_eval(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter, const std::vector<Task>& tasks,
              const EvalSettings& settings, const std::string& out_dir, Json settings_json,
              const std::function<void(const std::string&)>& log);

// The modes of a results.json in the order the run asked for them (settings.modes), then any
// others in key order.
std::vector<std::string> modes_in(const Json& results);

// RUN_DIR/results.json (written atomically).
void write_results(const std::string& out_dir, const Json& results);
// RUN_DIR/samples/KEY.MODE.jsonl, one JSON line per sample (written atomically).
void write_samples(const std::string& out_dir, const std::string& key, const std::string& mode,
                   const std::vector<Json>& samples);

// Markdown table: one row per task, one column per mode, "value ± stderr".
std::string results_markdown(const Json& results);

}  // namespace taia
