#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/grading.h"
#include "eval/prompts.h"
#include "model/update_controls.h"
#include "eval/results.h"
#include "eval/scorers.h"

namespace taia {
namespace {

using Clock = std::chrono::steady_clock;

// Where a run's time goes: prompts and tokenization (once per task and shot count), scoring (of
// which `model` inside Decoder::forward_packed; the rest is batching, decoding text, extraction),
// writing samples.
struct EvalTiming {
  double prepare = 0, score = 0, model = 0, write = 0;
  Json to_json() const {
    const double total = prepare + score + write;
    return Json{{"prepare_seconds", prepare}, {"score_seconds", score}, {"model_seconds", model},
                {"write_seconds", write}, {"outside_model_share", total > 0 ? 1.0 - model / total : 0.0}};
  }
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One (task, shots) entry in one mode: scored with a progress bar, its results.json leaf filled
// in, its samples written.
Json score_in_mode(TaskScorer& scorer, Decoder& decoder, const Task& task, const std::vector<size_t>& picked,
                   const Prepared& prepared, int64_t shots, const std::string& key, const std::string& mode,
                   const EvalSettings& s, const std::string& out_dir, EvalTiming& timing) {
  ProgressBar bar("eval " + key + " / " + mode, int64_t(picked.size()), s.progress);
  const auto t0 = Clock::now();
  const double busy0 = decoder.busy_seconds();
  scorer.set_progress([&](size_t done) {
    const double secs = seconds_since(t0);
    char extra[48];
    std::snprintf(extra, sizeof(extra), "%.1f ex/s", secs > 0 ? double(done) / secs : 0.0);
    bar.update(int64_t(done), extra);
  });
  ModeScore score = scorer.score(task, picked, prepared);
  scorer.set_progress({});
  bar.finish();
  const double secs = seconds_since(t0);
  Json& e = score.entry;
  describe_entry(e, task, shots);
  e["seconds"] = secs;
  e["examples_per_s"] = secs > 0 ? double(picked.size()) / secs : 0.0;
  e["model_seconds"] = decoder.busy_seconds() - busy0;
  timing.score += secs;
  timing.model += decoder.busy_seconds() - busy0;
  const auto write_start = Clock::now();
  write_samples(out_dir, key, mode, score.samples);
  timing.write += seconds_since(write_start);
  return e;
}

std::string entry_line(const std::string& key, const std::string& mode, const Json& e) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s / %s: %s = %.4f ± %.4f (n = %lld), %.1f examples/s", key.c_str(), mode.c_str(),
                e["metric"].get<std::string>().c_str(), e["value"].get<double>(), e["stderr"].get<double>(),
                (long long)e["n"].get<int64_t>(), e["examples_per_s"].get<double>());
  return buf;
}

// Each mode's adapter and mask (an update-size control: its derived adapter, made once here).
std::vector<std::pair<std::string, ModeAdapter>> checked_modes(const EvalSettings& s, const LoraAdapter* adapter) {
  std::vector<std::pair<std::string, ModeAdapter>> modes;
  for (const auto& m : s.modes) modes.push_back({m, adapter_for_mode(adapter, parse_mode_spec(m), "[eval]", " (--adapter DIR)")});
  return modes;
}

}  // namespace

Json run_eval(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter, const std::vector<Task>& tasks,
              const EvalSettings& s, const std::string& out_dir, Json settings_json,
              const std::function<void(const std::string&)>& log) {
  TAIA_CHECK(!tasks.empty(), "[eval] expected at least one task");
  TAIA_CHECK(!s.modes.empty() && !s.shots.empty(), "[eval] expected at least one mode and one shot count");
  const auto modes = checked_modes(s, adapter);
  make_directories(out_dir + "/samples");
  const PromptBuilder prompts(tok, s);
  TaskScorer scorer(decoder, tok, s, prompts.prompter().chat());
  settings_json["chat_template"] = prompts.prompter().chat() ? Json(prompts.prompter().template_name()) : Json(nullptr);
  Json results{{"tasks", Json::object()}, {"settings", settings_json}};
  std::map<std::string, std::vector<std::string>> group_members;  // group key -> its tasks' keys
  EvalTiming timing;
  for (const Task& task : tasks) {
    std::vector<size_t> picked(task.examples.size());
    std::iota(picked.begin(), picked.end(), size_t(0));
    if (s.limit > 0 && int64_t(picked.size()) > s.limit) picked.resize(size_t(s.limit));
    const bool shotless = task.kind == TaskKind::Perplexity || task.kind == TaskKind::Refusal;
    for (int64_t shots : shotless ? std::vector<int64_t>{0} : s.shots) {
      const std::string key = s.shots.size() > 1 && !shotless ? task.name + "@" + std::to_string(shots) + "shot"
                                                              : task.name;
      const auto prepare_start = Clock::now();
      const Prepared prepared = prompts.prepare(task, picked, shots);
      timing.prepare += seconds_since(prepare_start);
      for (const auto& [mode, run] : modes) {
        decoder.set_adapter(run.adapter, run.mask);
        const Json e = score_in_mode(scorer, decoder, task, picked, prepared, shots, key, mode, s, out_dir, timing);
        results["tasks"][key][mode] = e;
        log(entry_line(key, mode, e));
      }
      if (!task.group.empty()) group_members[task.group + key.substr(task.name.size())].push_back(key);  // mmlu@5shot
    }
  }
  decoder.set_adapter(nullptr, ModuleMask{});
  if (!group_members.empty()) results["groups"] = group_averages(results["tasks"], group_members);
  results["timing"] = timing.to_json();
  write_results(out_dir, results);
  return results;
}

}  // namespace taia
