// Aggregation over fine-tuning seeds: per experiment, task and mode the mean and the sample
// standard deviation over the seeds (the spread of fine-tuning, not a standard error); the
// summary rows, the results.json tasks (report format) and the Markdown table.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/scores.h"

namespace taia::demo {

// The four modes in the order of the table's columns.
const std::vector<std::string>& demo_modes();

struct Aggregate {
  Json rows = Json::array();     // {experiment, task, metric, n, modes: {mode: {mean, std, values}}}
  Json results = Json::object();  // "EXPERIMENT · TASK" -> mode -> {metric, value, std, n, task, shots}
};

// runs_by_experiment: experiment -> the Scores of each seed; base: the base model's scores (the
// same for every seed); tasks: the order of the rows.
Aggregate aggregate_over_seeds(const std::vector<std::string>& experiments,
                               const std::map<std::string, std::vector<Scores>>& runs_by_experiment,
                               const Scores& base, const TaskSet& tasks);

}  // namespace taia::demo
