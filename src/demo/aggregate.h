// Aggregation over fine-tuning runs (seeds, and worlds when there are several): per experiment,
// task and mode the mean and the sample standard deviation over the runs (the spread of
// fine-tuning and pretraining, not a standard error); per experiment and task the paired
// differences TAIA - vanilla, TAIA - base, TAIA - TAIF over the runs with 95 % intervals; the
// summary rows, the results.json tasks (report format) and the Markdown tables.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/scores.h"
#include "eval/aggregate_results.h"

namespace taia::demo {

// The four modes in the order of the table's columns.
const std::vector<std::string>& demo_modes();

struct Aggregate {
  std::vector<AggregateRow> rows;  // paired: "taia-vanilla", "taia-base", "taia-taif"
  Json results = Json::object();  // "EXPERIMENT · TASK" -> mode -> {metric, value, std, n, task, shots}
};

// The differences the paper's claims are about, each taken within one run (same world and seed).
const std::vector<std::pair<std::string, std::string>>& paired_differences();  // (taia, vanilla), ...

// The mean and 95 % interval of run-by-run differences d (world-major: each world's seeds
// together). One world: over the runs (unit "run", df = runs - 1). Several: worlds are the
// clusters, the interval is over the per-world means (unit "world", df = worlds - 1).
PairedDifference paired_interval(const std::vector<double>& d, size_t worlds);

// runs_by_experiment: experiment -> the Scores of each run (world-major), the run's base model
// scored under "base"; tasks: the order of the rows; worlds: how many worlds the runs come from
// (the clusters of the paired intervals).
Aggregate aggregate_over_seeds(const std::vector<std::string>& experiments,
                               const std::map<std::string, std::vector<Scores>>& runs_by_experiment,
                               const TaskSet& tasks, size_t worlds);

// The paper's claims as they apply to each experiment (facts / skill: TAIA keeps more knowledge
// than vanilla, beats the base and TAIF on the OOD knowledge test; country: H1-H4 of
// docs/REPRODUCTION.md), each judged on its paired difference: "reproduced" (95 % interval above
// 0), "contradicted" (below 0), "not shown" (it contains 0, or fewer than two runs).
std::vector<Claim> judge_claims(const std::vector<AggregateRow>& rows);
// That verdict of one paired difference.
std::string verdict_of(const PairedDifference& d);

// The paired differences as a Markdown table (0-shot rows): "mean [low, high]" per pair.
std::string paired_table_markdown(const std::vector<AggregateRow>& rows);

}  // namespace taia::demo
