// Results aggregated over several fine-tuning runs (what `taia demo` writes and `taia report`
// draws): per experiment and task the modes' mean, spread and per-run values, the paired
// differences between modes with their 95 % intervals, the claims judged on them, the per-layer
// drift of each mode and the rank sweep. Each type has one to_json / from_json; the JSON is the
// results.json / summary.json format of docs/REPRODUCTION.md.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace taia {

// a - b taken within each run, then averaged: mean and 95 % interval over n units, the runs
// ("run") or, with several worlds, the per-world means of the runs ("world": df = worlds - 1).
struct PairedDifference {
  double mean = 0, low = 0, high = 0;
  int64_t n = 0;
  std::string unit = "run";  // what n counts: "run", "world" or "example" (the base's ICL slope);
                             // "run" in results written before worlds were clusters
  // Runs that all gave the same difference (ties are common: accuracies move in steps of one
  // example) make a t interval of zero width; it carries no evidence, so nothing is judged on it.
  bool no_spread() const { return n >= 2 && low == high; }
  bool excludes_zero() const { return !no_spread() && (low > 0 || high < 0); }
  Json to_json() const;
  static PairedDifference from_json(const Json& j, const std::string& where);
};

// One mode over the runs: mean, sample standard deviation, and each run's value.
struct ModeSpread {
  double mean = 0, std = 0;
  std::vector<double> values;
  Json to_json() const;
  static ModeSpread from_json(const Json& j, const std::string& where);
};

// One (experiment, task) row of the aggregate table.
struct AggregateRow {
  std::string experiment, task, metric;  // task: "knowledge_chat", "knowledge_chat@4shot"
  int64_t n = 0;                         // examples per run
  std::map<std::string, ModeSpread> modes;
  std::map<std::string, PairedDifference> paired;  // "taia-vanilla" -> difference
  std::string key() const { return experiment + " · " + task; }  // results.json's task key
  Json to_json() const;
  static AggregateRow from_json(const Json& j, const std::string& where);
};

// A claim judged on one row's paired difference: "reproduced" (interval above 0), "contradicted"
// (below 0), "not shown" (it contains 0, or one run).
struct Claim {
  std::string experiment, claim, task, pair, verdict;
  PairedDifference difference;
  // Multiplicity (a run's claims are one family): the two-sided t-test's p, Holm's adjusted p,
  // the Bonferroni (simultaneous) interval at 1 - 0.05 / family size, and the verdict by Holm's p
  // at 0.05. Absent (NaN / empty) in results written before they existed.
  double p = NAN, p_holm = NAN, low_corrected = NAN, high_corrected = NAN;
  std::string verdict_corrected;
  std::string key() const { return experiment + " · " + task; }
  Json to_json() const;
  static Claim from_json(const Json& j, const std::string& where);
};

// Fills each claim's p, Holm-adjusted p, Bonferroni interval and corrected verdict, the claims
// being one family (eval/stats: Student's t, n - 1 degrees of freedom, as their 95 % intervals).
void correct_for_multiplicity(std::vector<Claim>& claims);

// Per layer, how far a mode moves the attention block's and the FFN's outputs from the base's
// (relative norm of the change; mean cosine), mean over runs.
struct MeanDrift {
  std::vector<double> attention, ffn, attention_cosine, ffn_cosine;
  Json to_json() const;
  static MeanDrift from_json(const Json& j, const std::string& where);
};

// The rank-ratio sweep: per task and mode, the mean over runs as a matrix [attention rank][FFN
// rank] (empty cells: no run).
struct RankSweep {
  using Matrix = std::vector<std::vector<std::optional<double>>>;
  std::string experiment;
  std::vector<int64_t> ranks;
  std::map<std::string, std::map<std::string, Matrix>> tasks;  // task -> mode -> matrix
  Json to_json() const;
  static RankSweep from_json(const Json& j, const std::string& where);
};

// What an aggregate adds to results.json besides "tasks" and "settings".
struct AggregateResults {
  std::map<std::string, std::map<std::string, PairedDifference>> paired;  // row key -> pair -> difference
  std::vector<Claim> claims;
  std::map<std::string, std::map<std::string, MeanDrift>> drift;  // experiment -> mode -> per layer
  std::optional<RankSweep> sweep;
  // Writes "paired", "claims", "drift" (and "sweep" when there is one) into results.
  void add_to(Json& results) const;
  // Reads them back; a plain eval run's results.json (none of them) gives an empty aggregate.
  static AggregateResults from_json(const Json& results, const std::string& where);
  bool empty() const { return paired.empty() && claims.empty() && drift.empty() && !sweep; }
};

}  // namespace taia
