// The reference points the third edition of the demo judges TAIA against (docs/REPRODUCTION.md):
// the composed skill's chance and majority-answer levels and its label-permuted fine-tuning run,
// and the in-context-learning test's precondition (the base must gain from demonstrations).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/world.h"
#include "eval/aggregate_results.h"

namespace taia::demo {

// The country test's baselines for one world: chance (1 / countries) and always answering the
// most frequent answer of the fine-tuning set `records` (ties: the first country).
struct SkillBaselines {
  double chance = 0;
  std::string majority_answer;
  double majority_acc = 0;  // on the country test (the known_test people)
  int64_t n = 0;            // test questions
  Json to_json() const;
};
SkillBaselines skill_baselines(const World& w, const std::vector<Json>& country_records);

// The base's in-context-learning gain: per test example, the OLS slope of its 0/1 correctness on
// log2(1 + K) over the shot counts, read from the base's samples (DIR/samples/icl_kK.base.jsonl);
// their mean (= the slope of the accuracies) with a 95 % interval over the examples.
PairedDifference base_icl_slope(const std::string& eval_dir, const std::vector<int64_t>& shots);

// Claims beside the paired ones: B1 TAIA's composed skill above the majority answer (per run:
// TAIA's country accuracy minus its world's majority level), B2 above the same seeds' TAIA after
// the label-permuted run (country-lora vs country_shuffled-lora), P1 the base gains from
// demonstrations (per world). `majority_per_run`: each country-lora run's world's majority level;
// worlds: the clusters of B1's and B2's intervals (paired_interval).
std::vector<Claim> baseline_claims(const std::vector<AggregateRow>& rows, const std::vector<double>& majority_per_run,
                                   const std::vector<std::pair<uint64_t, PairedDifference>>& icl_per_world,
                                   size_t worlds);

}  // namespace taia::demo
