#include "demo/aggregate.h"

#include <algorithm>

#include "demo/finetune.h"
#include "demo/util.h"
#include "demo/world.h"
#include "eval/stats.h"
#include "model/modes.h"

namespace taia::demo {
namespace {

// The task keys of a run in table order: the task files' order, the in-context-learning test and
// its slope, then the few-shot counts.
std::vector<std::string> ordered_task_keys(const Scores& scores, const TaskSet& tasks) {
  std::vector<std::string> order;
  for (const Task& t : tasks.main)
    for (const auto& [key, modes] : scores)
      if (split_shots(key).first == t.name && split_shots(key).second == 0) order.push_back(key);
  for (const Task& t : tasks.icl)
    if (scores.count(t.name)) order.push_back(t.name);
  if (scores.count(kIclSlopeTask)) order.push_back(kIclSlopeTask);
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

const std::vector<std::string>& demo_modes() {
  static const std::vector<std::string> modes = [] {
    std::vector<std::string> m = mode_names();
    for (const char* c : {"scaled", kRandomHalfMode, kEarlyMode}) m.push_back(c);
    return m;
  }();
  return modes;
}

const std::vector<std::pair<std::string, std::string>>& paired_differences() {
  static const std::vector<std::pair<std::string, std::string>> pairs = {
      {"taia", "vanilla"}, {"taia", kBaseMode}, {"taia", "taif"},
      {"taia", "scaled"},  {"taia", kRandomHalfMode}, {"taia", kEarlyMode}};
  return pairs;
}

PairedDifference paired_interval(const std::vector<double>& d, size_t worlds) {
  const Interval iv = clustered_mean_interval_95(d, worlds);
  return PairedDifference{iv.mean, iv.low, iv.high, iv.n, worlds > 1 ? "world" : "run"};
}

namespace {

// Per pair (a, b): the run-by-run differences a - b, their mean and 95 % interval (over worlds
// when there are several).
std::map<std::string, PairedDifference> paired(const std::map<std::string, ModeSpread>& modes, size_t worlds) {
  std::map<std::string, PairedDifference> out;
  for (const auto& [a, b] : paired_differences()) {
    if (!modes.count(a) || !modes.count(b)) continue;
    const std::vector<double>& va = modes.at(a).values;
    const std::vector<double>& vb = modes.at(b).values;
    if (va.size() != vb.size() || va.empty()) continue;
    std::vector<double> d;
    for (size_t i = 0; i < va.size(); ++i) d.push_back(va[i] - vb[i]);
    out[a + "-" + b] = paired_interval(d, worlds);
  }
  return out;
}

}  // namespace

Aggregate aggregate_over_seeds(const std::vector<std::string>& experiments,
                               const std::map<std::string, std::vector<Scores>>& runs_by_experiment,
                               const TaskSet& tasks, size_t worlds) {
  Aggregate out;
  for (const auto& experiment : experiments) {
    const std::vector<Scores>& runs = runs_by_experiment.at(experiment);
    for (const auto& task : ordered_task_keys(runs.front(), tasks)) {
      AggregateRow row;
      row.experiment = experiment;
      row.task = task;
      for (const auto& mode : demo_modes()) {
        Json entry;
        const std::vector<double> values = seed_values(runs, task, mode, &entry);
        if (values.empty()) continue;
        const double mean = mean_of(values), spread = sample_std(values);
        row.metric = entry["metric"].get<std::string>();
        row.n = entry["n"].get<int64_t>();
        row.modes[mode] = ModeSpread{mean, spread, values};
        out.results[row.key()][mode] = Json{{"metric", entry["metric"]}, {"value", mean}, {"std", spread},
                                            {"n", int64_t(values.size())}, {"task", row.key()},
                                            {"shots", split_shots(task).second}};
      }
      row.paired = paired(row.modes, worlds);
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

std::string paired_table_markdown(const std::vector<AggregateRow>& rows) {
  std::string s = "| experiment | task | metric | n |";
  std::string sep = "|---|---|---|---|";
  for (const auto& [a, b] : paired_differences()) {
    s += " " + a + " − " + b + " |";
    sep += "---|";
  }
  s += "\n" + sep + "\n";
  for (const AggregateRow& row : rows) {
    if (split_shots(row.task).second > 0) continue;
    const bool percent = row.metric != "bits_per_token";
    const double k = percent ? 100.0 : 1.0;
    const int digits = percent ? 1 : 3;
    s += "| " + row.experiment + " | " + row.task + " | " + row.metric + " | " +
         std::to_string(row.paired.empty() ? 0 : row.paired.begin()->second.n) + " |";
    for (const auto& [a, b] : paired_differences()) {
      auto it = row.paired.find(a + "-" + b);
      if (it == row.paired.end()) {
        s += " |";
        continue;
      }
      const PairedDifference& d = it->second;
      s += " " + fmt(k * d.mean, digits) + " [" + fmt(k * d.low, digits) + ", " + fmt(k * d.high, digits) + "] |";
    }
    s += "\n";
  }
  const bool by_world = std::any_of(rows.begin(), rows.end(), [](const AggregateRow& r) {
    return !r.paired.empty() && r.paired.begin()->second.unit == "world";
  });
  s += by_world ? "\nn: worlds. Each world's runs are averaged first; the 95 % intervals are over the per-world "
                  "means (Student's t, n - 1 degrees of freedom).\n"
                : "\nn: runs of one world (Student's t over the runs, n - 1 degrees of freedom).\n";
  return s;
}

namespace {

struct ClaimSpec {
  const char* kind;   // the experiments it applies to: "ood" (facts, skill) or "country" (and its data axes)
  const char* claim;
  const char* task;
  const char* pair;   // a key of a row's "paired"
};

const std::vector<ClaimSpec>& claim_specs() {
  static const std::vector<ClaimSpec> specs = {
      {"ood", "TAIA keeps more pretrained knowledge than vanilla", "knowledge_chat", "taia-vanilla"},
      {"ood", "TAIA beats the base model on the knowledge test (the paper's headline)", "knowledge_chat", "taia-base"},
      {"ood", "TAIA beats TAIF on the knowledge test", "knowledge_chat", "taia-taif"},
      {"ood", "TAIA keeps in-context learning better than vanilla (4-shot knowledge test)", "knowledge_chat@4shot",
       "taia-vanilla"},
      // Third edition (docs/REPRODUCTION.md, pre-registered): is it the FFN, or a smaller update?
      {"ood", "C1: TAIA keeps more knowledge than vanilla scaled to TAIA's norm", "knowledge_chat", "taia-scaled"},
      {"ood", "C2: TAIA keeps more knowledge than a random half of the modules", "knowledge_chat", "taia-random-half"},
      {"ood", "C3: TAIA keeps more knowledge than vanilla stopped at TAIA's norm", "knowledge_chat", "taia-early"},
      {"ood", "I1: TAIA keeps in-context learning better than vanilla (ICL slope)", kIclSlopeTask, "taia-vanilla"},
      {"country", "C1: TAIA keeps more knowledge than vanilla scaled to TAIA's norm", "knowledge_chat", "taia-scaled"},
      {"country", "C2: TAIA keeps more knowledge than a random half of the modules", "knowledge_chat", "taia-random-half"},
      {"country", "C3: TAIA keeps more knowledge than vanilla stopped at TAIA's norm", "knowledge_chat", "taia-early"},
      {"country", "C4: TAIA's composed skill against vanilla scaled to TAIA's norm", "country", "taia-scaled"},
      {"country", "C5: TAIA's composed skill against a random half of the modules", "country", "taia-random-half"},
      {"country", "C6: TAIA's composed skill against vanilla stopped at TAIA's norm", "country", "taia-early"},
      {"country", "I1: TAIA keeps in-context learning better than vanilla (ICL slope)", kIclSlopeTask, "taia-vanilla"},
      {"country", "H1: TAIA beats the base on the composed skill", "country", "taia-base"},
      {"country", "H2: TAIA beats TAIF on the composed skill", "country", "taia-taif"},
      {"country", "H3: TAIA is at least as good as vanilla on the composed skill", "country", "taia-vanilla"},
      {"country", "H4: TAIA keeps more pretrained knowledge than vanilla", "knowledge_chat", "taia-vanilla"}};
  return specs;
}

}  // namespace

std::string verdict_of(const PairedDifference& d) {
  return d.n < 2         ? "not shown (one run)"
         : d.no_spread() ? "not shown (no spread)"
         : d.low > 0     ? "reproduced"
         : d.high < 0    ? "contradicted"
                         : "not shown";
}

std::vector<Claim> judge_claims(const std::vector<AggregateRow>& rows) {
  std::vector<Claim> out;
  for (const AggregateRow& row : rows) {
    const std::string kind = row.experiment.substr(0, row.experiment.find('-'));
    for (const ClaimSpec& c : claim_specs()) {
      // country_shuffled is the label control of country: its rows are read beside country's, no claim of its own
      const bool applies = std::string(c.kind) == "ood" ? (kind == "facts" || kind == "skill")
                                                        : is_country_kind(kind) && kind != "country_shuffled";
      auto it = row.paired.find(c.pair);
      if (!applies || row.task != c.task || it == row.paired.end()) continue;
      const PairedDifference& d = it->second;
      out.push_back(Claim{row.experiment, c.claim, row.task, c.pair, verdict_of(d), d});
    }
  }
  return out;
}

}  // namespace taia::demo
