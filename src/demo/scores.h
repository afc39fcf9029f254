// The demo's evaluation: the task files written once per demo, scored after every fine-tuning
// run in every mode, and the scores of one run keyed by task and mode.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/presets.h"
#include "demo/world.h"
#include "eval/tasks.h"
#include "model/decoder.h"
#include "tokenizer/tokenizer.h"

namespace taia::demo {

// Scores of one evaluation: task key ("facts", "knowledge_chat@2shot") -> mode -> results.json leaf.
using Scores = std::map<std::string, std::map<std::string, Json>>;

// The task files, read once and scored after every fine-tuning run.
struct TaskSet {
  std::vector<Task> main;     // scored with 0 shots, in this order
  std::vector<Task> fewshot;  // the task scored with demonstrations (none or one)
  std::string fewshot_file;   // demonstrations ("": the task's other examples)
  // The in-context-learning test (world.h's icl_task), one task per shot count: icl_k0, icl_k1, ...
  std::vector<Task> icl;
  std::vector<int64_t> icl_shots;  // their shot counts, same order
  // The tasks the update-size controls are scored on (their claims' and the knowledge kept):
  // knowledge_chat, knowledge_completion, country, facts; on a user's model facts and retention.
  std::vector<Task> controls;
};

// The in-context-learning test's task name at K shots ("icl_k4"), and its summary row: per run and
// mode the OLS slope of accuracy on log2(1 + K) over the shot counts.
std::string icl_task_name(int64_t shots);
inline constexpr const char* kIclSlopeTask = "icl_slope";
// w_i = (x_i - mean x) / sum (x_j - mean x)^2 with x = log2(1 + K): the OLS slope of any y over
// the shot counts is sum w_i y_i (the weights sum to 0). Two shot counts or more.
std::vector<double> icl_slope_weights(const std::vector<int64_t>& shots);
// Adds scores[kIclSlopeTask][mode] for every mode scored at every shot count.
void add_icl_slopes(const std::vector<int64_t>& shots, Scores* scores);

// Writes the task files into data_dir and reads them back. On the generated world: the
// knowledge tasks about the known people, retention on held-out pretraining documents; on a
// user's model (`own_text` set): retention on samples of its own text. Both: facts and skill.
TaskSet write_tasks(const World& w, const Preset& p, uint64_t world_seed, const std::string& data_dir,
                    const std::vector<std::string>* own_text);


struct EvalRun {
  const Preset* preset = nullptr;
  std::string chat_template;  // "" = the tokenizer's own
  bool progress = true;
};

// Scores `tasks` in `modes` (0 shots, then the few-shot task with the preset's shot counts, then
// the in-context-learning test). rename maps a mode's name in the results to the name it is
// stored under (full fine-tuning runs score their merged models as "base"). controls_only: the
// control tasks alone (the update-size controls are compared on them).
Scores evaluate_modes(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter,
                      const std::vector<std::string>& modes, const TaskSet& tasks, const EvalRun& run,
                      const std::map<std::string, std::string>& rename, const std::string& out_dir,
                      bool controls_only = false);

// "knowledge_chat_gen@2shot" -> ("knowledge_chat_gen", 2); plain names are 0 shots.
std::pair<std::string, int64_t> split_shots(const std::string& key);

}  // namespace taia::demo
