#include "demo/aggregate.h"

#include "eval/stats.h"
#include "model/modes.h"

namespace taia::demo {
namespace {

// The task keys of a run in table order: the task files' order, then the few-shot counts.
std::vector<std::string> ordered_task_keys(const Scores& scores, const TaskSet& tasks) {
  std::vector<std::string> order;
  for (const Task& t : tasks.main)
    for (const auto& [key, modes] : scores)
      if (split_shots(key).first == t.name && split_shots(key).second == 0) order.push_back(key);
  for (const auto& [key, modes] : scores)
    if (split_shots(key).second > 0) order.push_back(key);
  return order;
}

// One score per seed for (task, mode), and the results.json leaf that describes the metric;
// the base model's score repeats for each seed. Empty when no run scored the pair.
std::vector<double> seed_values(const std::vector<Scores>& runs, const Scores& base, const std::string& task,
                                const std::string& mode, Json* entry) {
  std::vector<double> values;
  if (mode == kBaseMode) {
    auto it = base.find(task);
    if (it == base.end()) return values;
    *entry = it->second.at(kBaseMode);
    values.assign(runs.size(), (*entry)["value"].get<double>());
    return values;
  }
  for (const Scores& s : runs) {
    auto it = s.find(task);
    if (it == s.end() || !it->second.count(mode)) continue;
    *entry = it->second.at(mode);
    values.push_back((*entry)["value"].get<double>());
  }
  return values;
}

}  // namespace

const std::vector<std::string>& demo_modes() { return mode_names(); }

Aggregate aggregate_over_seeds(const std::vector<std::string>& experiments,
                               const std::map<std::string, std::vector<Scores>>& runs_by_experiment,
                               const Scores& base, const TaskSet& tasks) {
  Aggregate out;
  for (const auto& experiment : experiments) {
    const std::vector<Scores>& runs = runs_by_experiment.at(experiment);
    for (const auto& task : ordered_task_keys(runs.front(), tasks)) {
      Json row{{"experiment", experiment}, {"task", task}, {"modes", Json::object()}};
      for (const auto& mode : demo_modes()) {
        Json entry;
        const std::vector<double> values = seed_values(runs, base, task, mode, &entry);
        if (values.empty()) continue;
        const double mean = mean_of(values), spread = sample_std(values);
        row["metric"] = entry["metric"];
        row["n"] = entry["n"];
        row["modes"][mode] = Json{{"mean", mean}, {"std", spread}, {"values", values}};
        const std::string key = experiment + " · " + task;
        out.results[key][mode] = Json{{"metric", entry["metric"]}, {"value", mean}, {"std", spread},
                                      {"n", int64_t(values.size())}, {"task", key}, {"shots", split_shots(task).second}};
      }
      out.rows.push_back(row);
    }
  }
  return out;
}

}  // namespace taia::demo
