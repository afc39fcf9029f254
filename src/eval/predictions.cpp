#include "eval/predictions.h"

#include <map>

#include "core/error.h"
#include "eval/evaluate.h"
#include "eval/grading.h"

namespace taia {
namespace {

// The example a prediction line names: "index" (0-based position) or "id" (the record's id).
size_t example_of(const Json& j, const std::string& where, const Task& task, const std::map<std::string, size_t>& by_id) {
  if (auto i = j.find("index"); i != j.end()) {
    TAIA_CHECK(i->is_number_integer(), where, ": field 'index' expected an integer, got ", i->type_name());
    const int64_t v = i->get<int64_t>();
    TAIA_CHECK(v >= 0 && v < int64_t(task.examples.size()), where, ": field 'index' expected 0..",
               int64_t(task.examples.size()) - 1, " (", task.path, " has ", task.examples.size(), " examples), got ", v);
    return size_t(v);
  }
  auto id = j.find("id");
  TAIA_CHECK(id != j.end(), where, ": missing field 'index' (or 'id')");
  TAIA_CHECK(!by_id.empty(), where, ": field 'id' given but the records of ", task.path, " have no ids; use 'index'");
  TAIA_CHECK(id->is_string() || id->is_number_integer(), where, ": field 'id' expected a string or an integer");
  const std::string key = id->is_string() ? id->get<std::string>() : std::to_string(id->get<int64_t>());
  auto it = by_id.find(key);
  TAIA_CHECK(it != by_id.end(), where, ": id '", key, "' is not the id of any record of ", task.path);
  return it->second;
}

}  // namespace

std::vector<std::string> read_predictions(const std::string& path, const Task& task, int64_t limit) {
  const size_t n = limit > 0 ? std::min(task.examples.size(), size_t(limit)) : task.examples.size();
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < task.examples.size(); ++i)
    if (!task.examples[i].id.empty()) by_id.emplace(task.examples[i].id, i);
  std::vector<std::string> completions(n);
  std::vector<std::string> seen_at(n);
  for (const JsonRecord& r : read_json_records(path)) {
    TAIA_CHECK(r.error.empty(), r.error);
    TAIA_CHECK(r.value.is_object(), r.where, ": expected a JSON object {\"index\", \"completion\"}, got ",
               r.value.type_name());
    const size_t i = example_of(r.value, r.where, task, by_id);
    if (i >= n) continue;  // beyond --limit
    TAIA_CHECK(seen_at[i].empty(), r.where, ": a second completion for example ", i, " (the first: ", seen_at[i], ")");
    auto c = r.value.find("completion");
    TAIA_CHECK(c != r.value.end(), r.where, ": missing field 'completion'");
    TAIA_CHECK(c->is_string(), r.where, ": field 'completion' expected a string, got ", c->type_name());
    completions[i] = c->get<std::string>();
    seen_at[i] = r.where;
  }
  for (size_t i = 0; i < n; ++i)
    TAIA_CHECK(!seen_at[i].empty(), path, ": no completion for example ", i, " (", task.examples[i].where, ")",
               limit > 0 ? "; --limit " + std::to_string(limit) + " asks for the first " + std::to_string(n)
                         : std::string("; every example needs one, or pass --limit N"));
  return completions;
}

Json score_predictions(const Task& task, const std::string& predictions_path, int64_t limit,
                       const std::vector<std::string>& refusal_phrases, const std::string& out_dir, Json settings) {
  TAIA_CHECK(task.kind != TaskKind::Perplexity, task.path, ": a perplexity task scores a model's likelihoods, not "
             "completions; --predictions expected a generative, multiple-choice or refusal task");
  const std::vector<std::string> completions = read_predictions(predictions_path, task, limit);
  const auto& phrases = refusal_phrases.empty() ? default_refusal_phrases() : refusal_phrases;
  std::vector<double> score;
  std::vector<Json> samples;
  std::vector<std::optional<Extracted>> found(completions.size());
  for (size_t i = 0; i < completions.size(); ++i) {
    const TaskExample& e = task.examples[i];
    if (task.kind == TaskKind::Refusal) {
      const bool refused = is_refusal(completions[i], phrases);
      score.push_back(refused ? 1.0 : 0.0);
      samples.push_back(refusal_sample(e, e.question, completions[i], refused));
      continue;
    }
    const AnswerStyle style = answer_style(task, e);
    found[i] = extract_answer(completions[i], style);
    if (!found[i]) found[i] = reply_as_answer(completions[i], style);
    const bool ok = found[i] && is_gold(*found[i], e);
    score.push_back(ok ? 1.0 : 0.0);
    samples.push_back(reply_sample(e, e.question, completions[i], found[i], ok));
  }
  Json entry = task.kind == TaskKind::Refusal ? refusal_entry(score) : metric_entry("acc", score);
  if (task.kind != TaskKind::Refusal) entry["answers_found"] = answers_found_share(found);
  describe_entry(entry, task, 0);
  settings["modes"] = Json::array({kPredictionsMode});
  settings["predictions"] = predictions_path;
  Json results{{"tasks", {{task.name, {{kPredictionsMode, entry}}}}}, {"settings", settings}};
  write_samples(out_dir, task.name, kPredictionsMode, samples);
  write_results(out_dir, results);
  return results;
}

}  // namespace taia
