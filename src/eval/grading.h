// Grading one reply to a generative or multiple-choice example: answers.h's extraction rules,
// the reply itself as the last resort on free-text tasks (BBH's "(A)", "True", "valid"), and the
// comparison with the gold answer or one of its aliases. `taia eval`'s generation and
// `--predictions` (completions made by another engine) grade through these same functions.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/answers.h"
#include "eval/tasks.h"

namespace taia {

// The extraction style of a task's replies: numbers (GSM8K, SVAMP), option letters (multiple
// choice read from text), or free text.
AnswerStyle answer_style(const Task& task, const TaskExample& e);

// The last resort for free-text tasks: the reply's first non-empty line, trimmed, without a
// trailing period (rule "whole_reply"); nullopt for numeric and letter styles or an empty reply.
std::optional<Extracted> reply_as_answer(const std::string& reply, const AnswerStyle& style);

// The extracted answer equals the gold answer or one of its aliases (answers_match).
bool is_gold(const Extracted& found, const TaskExample& e);

// A samples/TASK.MODE.jsonl line of a graded reply.
Json reply_sample(const TaskExample& e, const std::string& prompt, const std::string& reply,
                  const std::optional<Extracted>& found, bool correct);
// The same for a refusal task's reply (refused or not).
Json refusal_sample(const TaskExample& e, const std::string& prompt, const std::string& reply, bool refused);

// A results.json leaf: {metric, value (mean), stderr, n} over the per-example scores.
Json metric_entry(const char* metric, const std::vector<double>& per_example);
// Refusal tasks: the refusal_rate entry with its attack_success_rate.
Json refusal_entry(const std::vector<double>& refused);
// The share of replies an answer was found in (generative and graded multiple choice).
double answers_found_share(const std::vector<std::optional<Extracted>>& found);
// What every leaf carries about its task: task, kind, format, shots.
void describe_entry(Json& entry, const Task& task, int64_t shots);

}  // namespace taia
