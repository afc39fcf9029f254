// What `taia eval` runs: modes, shots, limits, prompt style and scoring choices. One struct the
// prompts, the scorers and the run loop all read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/enum_words.h"

namespace taia {

// Multiple choice by each option's log-likelihood, or by the likeliest option letter (the paper's).
enum class McMethod { Loglik, Letter };
// Perplexity windows: Disjoint (every token but the first predicted once, within its window) or
// LlamaCpp (llama-perplexity's: BOS-led chunks, the second half of each scored).
enum class PerplexityWindows { Disjoint, LlamaCpp };

// The words of the CLI and of results.json: "loglik" / "letter", "disjoint" / "llama-cpp".
const EnumWords<McMethod>& mc_method_words();
const EnumWords<PerplexityWindows>& perplexity_windows_words();
std::string mc_method_name(McMethod m);
std::string perplexity_windows_name(PerplexityWindows w);

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
  PerplexityWindows perplexity_windows = PerplexityWindows::Disjoint;
  std::string fewshot_file;      // demonstrations; else TASK's train split, else the task itself
  uint64_t seed = 1234;          // few-shot sampling
  std::vector<std::string> refusal_phrases;  // empty: default_refusal_phrases()
  bool second_pass = true;       // no answer found: append " The answer is" and continue
  bool progress = true;
};

}  // namespace taia
