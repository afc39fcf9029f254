#include "demo/baselines.h"

#include <cmath>

#include "core/error.h"
#include "demo/aggregate.h"
#include "demo/scores.h"
#include "eval/stats.h"

namespace taia::demo {
namespace {

// "The answer is Elvoria." -> "Elvoria".
std::string answer_of(const Json& record) {
  const std::string prefix = "The answer is ";
  const std::string a = record.at("messages").back().at("content").get<std::string>();
  TAIA_CHECK(a.rfind(prefix, 0) == 0 && a.size() > prefix.size() + 1 && a.back() == '.',
             "[demo] a country record's answer expected 'The answer is X.', got '", a, "'");
  return a.substr(prefix.size(), a.size() - prefix.size() - 1);
}

const AggregateRow* find_row(const std::vector<AggregateRow>& rows, const std::string& experiment, const std::string& task) {
  for (const AggregateRow& r : rows)
    if (r.experiment == experiment && r.task == task) return &r;
  return nullptr;
}

}  // namespace

Json SkillBaselines::to_json() const {
  return Json{{"chance", chance}, {"majority_answer", majority_answer}, {"majority_acc", majority_acc}, {"n", n}};
}

SkillBaselines skill_baselines(const World& w, const std::vector<Json>& country_records) {
  std::map<std::string, int64_t> counts;
  for (const Json& r : country_records) ++counts[answer_of(r)];
  SkillBaselines b;
  b.chance = 1.0 / double(w.countries.size());
  int64_t most = -1;
  for (const std::string& c : w.countries)  // the countries' order breaks ties
    if (counts[c] > most) {
      most = counts[c];
      b.majority_answer = c;
    }
  int64_t right = 0;
  for (const Json& q : country_task(w)) {
    ++b.n;
    right += q.at("answer").get<std::string>() == b.majority_answer;
  }
  b.majority_acc = b.n ? double(right) / double(b.n) : 0.0;
  return b;
}

PairedDifference base_icl_slope(const std::string& eval_dir, const std::vector<int64_t>& shots) {
  const std::vector<double> w = icl_slope_weights(shots);
  std::vector<std::vector<double>> correct;  // [shot count][example]
  for (int64_t k : shots) {
    const std::string path = eval_dir + "/samples/" + icl_task_name(k) + ".base.jsonl";
    correct.emplace_back();
    for (const auto& r : read_json_records(path)) {
      TAIA_CHECK(r.error.empty(), r.error);
      correct.back().push_back(r.value.at("correct").get<bool>() ? 1.0 : 0.0);
    }
    TAIA_CHECK(correct.back().size() == correct.front().size(), path, ": ", correct.back().size(),
               " samples, expected ", correct.front().size(), " (as at ", shots.front(), " shots)");
  }
  std::vector<double> slopes;  // one per example
  for (size_t e = 0; e < correct.front().size(); ++e) {
    double slope = 0;
    for (size_t i = 0; i < w.size(); ++i) slope += w[i] * correct[i][e];
    slopes.push_back(slope);
  }
  const Interval iv = mean_interval_95(slopes);
  return PairedDifference{iv.mean, iv.low, iv.high, iv.n, "example"};
}

std::vector<Claim> baseline_claims(const std::vector<AggregateRow>& rows, const std::vector<double>& majority_per_run,
                                   const std::vector<std::pair<uint64_t, PairedDifference>>& icl_per_world,
                                   size_t worlds) {
  std::vector<Claim> out;
  for (const auto& [world, d] : icl_per_world)
    out.push_back(Claim{"base (world " + std::to_string(world) + ")",
                        "P1: the base learns from demonstrations (ICL slope over test examples)", kIclSlopeTask, "base",
                        verdict_of(d), d});
  const AggregateRow* country = find_row(rows, "country-lora", "country");
  if (!country || !country->modes.count("taia")) return out;
  const std::vector<double>& taia = country->modes.at("taia").values;
  if (majority_per_run.size() == taia.size()) {
    std::vector<double> d;
    for (size_t i = 0; i < taia.size(); ++i) d.push_back(taia[i] - majority_per_run[i]);
    const PairedDifference pd = paired_interval(d, worlds);
    out.push_back(Claim{"country-lora", "B1: TAIA's composed skill beats always answering the majority answer",
                        "country", "taia-majority", verdict_of(pd), pd});
  }
  const AggregateRow* shuffled = find_row(rows, "country_shuffled-lora", "country");
  if (shuffled && shuffled->modes.count("taia") && shuffled->modes.at("taia").values.size() == taia.size()) {
    const std::vector<double>& s = shuffled->modes.at("taia").values;
    std::vector<double> d;
    for (size_t i = 0; i < taia.size(); ++i) d.push_back(taia[i] - s[i]);
    const PairedDifference pd = paired_interval(d, worlds);
    out.push_back(Claim{"country-lora", "B2: TAIA's composed skill beats TAIA after fine-tuning on permuted labels",
                        "country", "taia-taia(shuffled)", verdict_of(pd), pd});
  }
  return out;
}

}  // namespace taia::demo
