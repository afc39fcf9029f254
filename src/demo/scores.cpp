#include "demo/scores.h"

#include <cmath>
#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "demo/util.h"
#include "eval/evaluate.h"

namespace taia::demo {
namespace {

// Adds one results.json's scores to *out; shots > 0: the run had one shot count, so its keys
// lack the "@Kshot" suffix, which is added.
void collect(const Json& results, const std::map<std::string, std::string>& rename, int64_t shots, Scores* out) {
  for (const auto& [task, modes] : results["tasks"].items())
    for (const auto& [mode, entry] : modes.items()) {
      auto it = rename.find(mode);
      const std::string key =
          shots > 0 && task.find('@') == std::string::npos ? task + "@" + std::to_string(shots) + "shot" : task;
      (*out)[key][it == rename.end() ? mode : it->second] = entry;
    }
}

}  // namespace

TaskSet write_tasks(const World& w, const Preset& p, uint64_t world_seed, const std::string& data_dir,
                    const std::vector<std::string>* own_text) {
  const std::string& d = data_dir;
  TaskSet set;
  std::vector<std::string> files;  // scored with 0 shots, in this order
  std::string fewshot_task;
  if (!own_text) {
    write_jsonl(d + "knowledge_chat.jsonl", knowledge_chat_mc(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_gen.jsonl", knowledge_chat_gen(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_restated.jsonl", knowledge_chat_restated(w, Group::KnownTest));
    write_jsonl(d + "knowledge_completion.jsonl", knowledge_completion(w, Group::KnownTest));
    write_jsonl(d + "knowledge_chat_demos.jsonl", knowledge_chat_mc(w, Group::KnownMix));
    // Held-out documents of the pretraining distribution, one record each (BOS + document, as
    // in pretraining: a long concatenation would reach positions the model never trained).
    std::vector<Json> heldout;
    for (const auto& doc : pretraining_documents(w, 1, p.filler, p.sentences_per_doc, world_seed * 2 + 2))
      if (int64_t(heldout.size()) < p.retention_docs) heldout.push_back(Json{{"text", doc}});
    write_jsonl(d + "retention.jsonl", heldout);
    write_jsonl(d + "country.jsonl", country_task(w));
    files = {d + "knowledge_chat.jsonl", d + "knowledge_chat_gen.jsonl", d + "knowledge_chat_restated.jsonl",
             d + "knowledge_completion.jsonl", d + "country.jsonl"};
    for (int64_t k : p.icl_shots) {
      const std::string f = d + icl_task_name(k) + ".jsonl";
      write_jsonl(f, icl_task(w, k, p.icl_examples));
      set.icl.push_back(load_task(f));
      set.icl_shots.push_back(k);
    }
    fewshot_task = d + "knowledge_chat.jsonl";
    set.fewshot_file = d + "knowledge_chat_demos.jsonl";
  } else {
    std::vector<Json> own;
    for (const auto& text : *own_text) own.push_back(Json{{"text", text}});
    write_jsonl(d + "retention.jsonl", own);
    fewshot_task = d + "facts.jsonl";
  }
  write_jsonl(d + "facts.jsonl", facts_task(w));
  write_jsonl(d + "skill.jsonl", skill_task(w, p.skill_examples));
  for (const char* f : {"facts.jsonl", "skill.jsonl", "retention.jsonl"}) files.push_back(d + f);
  for (const auto& f : files) set.main.push_back(load_task(f));
  const std::vector<std::string> control_tasks = own_text ? std::vector<std::string>{"facts", "retention"}
                                                          : std::vector<std::string>{"knowledge_chat", "knowledge_completion",
                                                                                     "country", "facts"};
  for (const Task& t : set.main)
    if (std::find(control_tasks.begin(), control_tasks.end(), t.name) != control_tasks.end()) set.controls.push_back(t);
  set.fewshot.push_back(load_task(fewshot_task));
  return set;
}

std::string icl_task_name(int64_t shots) { return "icl_k" + std::to_string(shots); }

std::vector<double> icl_slope_weights(const std::vector<int64_t>& shots) {
  TAIA_CHECK(shots.size() >= 2, "[demo] the ICL slope needs two shot counts or more, got ", shots.size());
  std::vector<double> x;  // log2(1 + K)
  for (int64_t k : shots) x.push_back(std::log2(1.0 + double(k)));
  double mx = 0, sxx = 0;
  for (double v : x) mx += v / double(x.size());
  for (double v : x) sxx += (v - mx) * (v - mx);
  for (double& v : x) v = (v - mx) / sxx;
  return x;
}

void add_icl_slopes(const std::vector<int64_t>& shots, Scores* scores) {
  if (shots.size() < 2) return;
  const std::vector<double> w = icl_slope_weights(shots);
  const auto& first = (*scores)[icl_task_name(shots[0])];
  for (const auto& [mode, entry] : first) {
    double slope = 0;
    bool all = true;
    for (size_t i = 0; i < shots.size() && all; ++i) {
      auto it = scores->find(icl_task_name(shots[i]));
      all = it != scores->end() && it->second.count(mode);
      if (all) slope += w[i] * it->second.at(mode)["value"].get<double>();
    }
    if (!all) continue;
    (*scores)[kIclSlopeTask][mode] = Json{{"metric", "slope"}, {"value", slope}, {"n", entry["n"]},
                                          {"stderr", 0.0}, {"kind", "icl_slope"}};
  }
}

Scores evaluate_modes(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter,
                      const std::vector<std::string>& modes, const TaskSet& tasks, const EvalRun& run,
                      const std::map<std::string, std::string>& rename, const std::string& out_dir, bool controls_only) {
  Scores scores;
  EvalSettings s;
  s.modes = modes;
  s.chat_template = run.chat_template;
  s.max_new_tokens = run.preset->max_new_tokens;
  s.batch_size = 16;
  s.max_length = 256;
  s.progress = run.progress;
  const auto quiet = [](const std::string&) {};
  if (controls_only) {
    collect(run_eval(decoder, tok, adapter, tasks.controls, s, out_dir, Json{{"demo", true}}, quiet), rename, 0, &scores);
    return scores;
  }
  collect(run_eval(decoder, tok, adapter, tasks.main, s, out_dir, Json{{"demo", true}}, quiet), rename, 0, &scores);
  if (!tasks.icl.empty()) {  // each record brings its own demonstrations: 0 drawn shots
    collect(run_eval(decoder, tok, adapter, tasks.icl, s, out_dir + "-icl", Json{{"demo", true}}, quiet), rename, 0,
            &scores);
    add_icl_slopes(tasks.icl_shots, &scores);
  }
  std::vector<int64_t> shots;
  for (int64_t k : run.preset->shots)
    if (k > 0) shots.push_back(k);
  if (!shots.empty() && !tasks.fewshot.empty()) {
    s.shots = shots;
    s.fewshot_file = tasks.fewshot_file;
    collect(run_eval(decoder, tok, adapter, tasks.fewshot, s, out_dir + "-fewshot", Json{{"demo", true}}, quiet),
            rename, shots.size() == 1 ? shots[0] : 0, &scores);
  }
  return scores;
}

std::pair<std::string, int64_t> split_shots(const std::string& key) {
  const size_t at = key.rfind('@');
  if (at == std::string::npos || key.size() < at + 6 || key.compare(key.size() - 4, 4, "shot") != 0) return {key, 0};
  return {key.substr(0, at), std::atoll(key.substr(at + 1).c_str())};
}

}  // namespace taia::demo
