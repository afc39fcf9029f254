#include "demo/aggregate.h"

#include "demo/util.h"
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

// One score per run for (task, mode), and the results.json leaf that describes the metric.
// Empty when no run scored the pair.
std::vector<double> seed_values(const std::vector<Scores>& runs, const std::string& task, const std::string& mode,
                                Json* entry) {
  std::vector<double> values;
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

const std::vector<std::pair<std::string, std::string>>& paired_differences() {
  static const std::vector<std::pair<std::string, std::string>> pairs = {
      {"taia", "vanilla"}, {"taia", kBaseMode}, {"taia", "taif"}};
  return pairs;
}

namespace {

// Per pair (a, b): the run-by-run differences a - b, their mean and 95 % interval.
Json paired(const Json& modes) {
  Json out = Json::object();
  for (const auto& [a, b] : paired_differences()) {
    if (!modes.contains(a) || !modes.contains(b)) continue;
    const Json& va = modes[a]["values"];
    const Json& vb = modes[b]["values"];
    if (va.size() != vb.size() || va.empty()) continue;
    std::vector<double> d;
    for (size_t i = 0; i < va.size(); ++i) d.push_back(va[i].get<double>() - vb[i].get<double>());
    const Interval iv = mean_interval_95(d);
    out[a + "-" + b] = Json{{"mean", iv.mean}, {"low", iv.low}, {"high", iv.high}, {"n", iv.n}};
  }
  return out;
}

}  // namespace

Aggregate aggregate_over_seeds(const std::vector<std::string>& experiments,
                               const std::map<std::string, std::vector<Scores>>& runs_by_experiment,
                               const TaskSet& tasks) {
  Aggregate out;
  for (const auto& experiment : experiments) {
    const std::vector<Scores>& runs = runs_by_experiment.at(experiment);
    for (const auto& task : ordered_task_keys(runs.front(), tasks)) {
      Json row{{"experiment", experiment}, {"task", task}, {"modes", Json::object()}};
      for (const auto& mode : demo_modes()) {
        Json entry;
        const std::vector<double> values = seed_values(runs, task, mode, &entry);
        if (values.empty()) continue;
        const double mean = mean_of(values), spread = sample_std(values);
        row["metric"] = entry["metric"];
        row["n"] = entry["n"];
        row["modes"][mode] = Json{{"mean", mean}, {"std", spread}, {"values", values}};
        const std::string key = experiment + " · " + task;
        out.results[key][mode] = Json{{"metric", entry["metric"]}, {"value", mean}, {"std", spread},
                                      {"n", int64_t(values.size())}, {"task", key}, {"shots", split_shots(task).second}};
      }
      row["paired"] = paired(row["modes"]);
      out.rows.push_back(row);
    }
  }
  return out;
}

std::string paired_table_markdown(const Json& summary) {
  std::string s = "| experiment | task | metric | n |";
  std::string sep = "|---|---|---|---|";
  for (const auto& [a, b] : paired_differences()) {
    s += " " + a + " − " + b + " |";
    sep += "---|";
  }
  s += "\n" + sep + "\n";
  for (const Json& row : summary["rows"]) {
    if (split_shots(row["task"].get<std::string>()).second > 0 || !row.contains("paired")) continue;
    const bool percent = row.value("metric", std::string()) != "bits_per_token";
    const double k = percent ? 100.0 : 1.0;
    const int digits = percent ? 1 : 3;
    s += "| " + row["experiment"].get<std::string>() + " | " + row["task"].get<std::string>() + " | " +
         row.value("metric", std::string()) + " | " +
         std::to_string(row["paired"].empty() ? 0 : row["paired"].begin()->value("n", int64_t(0))) + " |";
    for (const auto& [a, b] : paired_differences()) {
      const std::string key = a + "-" + b;
      if (!row["paired"].contains(key)) {
        s += " |";
        continue;
      }
      const Json& d = row["paired"][key];
      s += " " + fmt(k * d["mean"].get<double>(), digits) + " [" + fmt(k * d["low"].get<double>(), digits) + ", " +
           fmt(k * d["high"].get<double>(), digits) + "] |";
    }
    s += "\n";
  }
  return s;
}

}  // namespace taia::demo
