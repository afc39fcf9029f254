// The scorers of `taia eval`, one per task kind: multiple choice by option log-likelihood or by
// letter, generative (greedy reply, answer extraction, the paper's second pass), refusal, and
// perplexity. Each turns a task's prepared requests into a results.json leaf and its samples.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/answers.h"
#include "eval/prompts.h"
#include "eval/scoring.h"
#include "eval/settings.h"
#include "eval/tasks.h"
#include "model/decoder.h"

namespace taia {

// One (task, shots) entry's score in one mode.
struct ModeScore {
  Json entry;                  // metric, value, stderr, n, ... (a results.json leaf)
  std::vector<Json> samples;   // one per example
};

class TaskScorer {
 public:
  // chat: the prompts go through a chat template (replies then end at its end-of-turn tokens).
  TaskScorer(Decoder& d, const Tokenizer& tok, const EvalSettings& s, bool chat);
  // Reports examples finished within the current score() call.
  void set_progress(ProgressFn f) { progress_ = std::move(f); }
  // The decoder's current adapter mode on every picked example.
  ModeScore score(const Task& task, const std::vector<size_t>& picked, const Prepared& p);

 private:
  ModeScore mc_loglik(const Task& task, const std::vector<size_t>& picked, const Prepared& p);
  ModeScore mc_letter(const Task& task, const std::vector<size_t>& picked, const Prepared& p);
  ModeScore generative(const Task& task, const std::vector<size_t>& picked, const Prepared& p);
  ModeScore refusal(const Task& task, const std::vector<size_t>& picked, const Prepared& p);
  ModeScore perplexity(const Task& task, const std::vector<size_t>& picked, const Prepared& p);

  std::string reply_end(const Task& task) const;
  GreedyOptions reply_options(int64_t max_new, const std::string& end) const;
  std::vector<std::string> reply_texts(const std::vector<std::vector<int32_t>>& outs, const std::string& end) const;
  std::vector<std::string> second_pass(const Task& task, const std::vector<size_t>& picked, const Prepared& p,
                                       const std::vector<std::vector<int32_t>>& outs, int64_t max_new,
                                       std::vector<std::optional<Extracted>>& found) const;

  Decoder& d_;
  const Tokenizer& tok_;
  const EvalSettings& s_;
  bool chat_;
  std::vector<std::string> phrases_;  // refusal phrases
  std::vector<int64_t> eos_;          // ids that end a reply
  ProgressFn progress_;
};

}  // namespace taia
