#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/answers.h"
#include "eval/grading.h"
#include "eval/scoring.h"
#include "eval/stats.h"

namespace taia {
namespace {

using Clock = std::chrono::steady_clock;

bool ends_with_space(const std::string& s) {
  return !s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r');
}

// The dialogue of one prompt: few-shot (question, answer) pairs, the question, and text the
// reply starts with. Rendered through the chat template, or as "Question: ...\nAnswer:" text.
struct Dialogue {
  std::vector<std::pair<std::string, std::string>> demos;
  std::string query;
  std::string answer_prefix;
};

class Prompter {
 public:
  // raw: plain-text completion ("context" tasks): demonstrations and query as bare text lines.
  Prompter(const Tokenizer& tok, const EvalSettings& s, bool raw = false) : tok_(tok), raw_(raw) {
    if (!s.chat || raw) return;
    tmpl_ = s.chat_template.empty() ? chat_template_for(tok) : chat_template_by_name(s.chat_template);
    chat_ = tmpl_.format != ChatFormat::Raw;
  }
  bool chat() const { return chat_; }
  const std::string& template_name() const { return tmpl_.name; }

  std::string render(const Dialogue& d) const {
    if (raw_) {
      std::string text;
      for (const auto& [q, a] : d.demos) text += q + " " + a + "\n";
      return text + d.query;
    }
    if (!chat_) {
      std::string text;
      for (const auto& [q, a] : d.demos) text += "Question: " + q + "\nAnswer: " + a + "\n\n";
      text += "Question: " + d.query + "\nAnswer:";
      if (!d.answer_prefix.empty()) text += " " + d.answer_prefix;
      return text;
    }
    std::vector<ChatMessage> messages;
    for (const auto& [q, a] : d.demos) {
      messages.push_back({"user", q});
      messages.push_back({"assistant", a});
    }
    messages.push_back({"user", d.query});
    const std::string bos = tok_.bos_id ? tok_.id_to_piece(*tok_.bos_id) : "";
    const std::string eos = tok_.eos_id ? tok_.id_to_piece(*tok_.eos_id) : "";
    return render_chat(tmpl_, messages, /*add_generation_prompt=*/true, bos, eos).text + d.answer_prefix;
  }
  // Chat text carries its own BOS (the template writes it); plain text gets the tokenizer's.
  std::vector<int32_t> encode(const std::string& text) const { return tok_.encode(text, !chat_).ids; }

 private:
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  bool raw_ = false;
  bool chat_ = false;
};

std::string options_block(const TaskExample& e) {
  std::string s;
  for (size_t i = 0; i < e.choices.size(); ++i) s += "\n" + e.labels[i] + ". " + e.choices[i];
  return s;
}

// Where few-shot demonstrations come from.
struct FewshotPool {
  std::vector<TaskExample> examples;
  bool is_task = false;   // the task's own examples: never the one being asked
  bool in_order = false;  // a dev split (MMLU's protocol): the first K, in file order
};

std::string replace_first(std::string s, const std::string& from, const std::string& to) {
  const size_t p = s.find(from);
  return p == std::string::npos ? s : s.replace(p, from.size(), to);
}

// The few-shot pool: --fewshot-file, else a sibling "train" file (test -> train in the name), else
// MMLU's layout, the dev split in a sibling folder (mmlu/test/S_test.csv -> mmlu/dev/S_dev.csv),
// else the task's own examples.
FewshotPool fewshot_pool(const Task& task, const EvalSettings& s) {
  FewshotPool pool;
  if (!s.fewshot_file.empty()) {
    pool.examples = load_task(s.fewshot_file, task.format).examples;
    return pool;
  }
  const size_t slash = task.path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : task.path.substr(0, slash + 1);
  const std::string base = task.path.substr(dir.size());
  for (const char* from : {"test", "validation", "val", "dev"}) {
    if (base.find(from) == std::string::npos) continue;
    const std::string sibling = dir + replace_first(base, from, "train");
    if (file_exists(sibling)) {
      pool.examples = load_task(sibling, task.format).examples;
      return pool;
    }
  }
  const std::filesystem::path folder = std::filesystem::path(task.path).parent_path();
  const std::string split = folder.filename().string();
  if (split == "test" || split == "val" || split == "validation") {
    const std::string dev = (folder.parent_path() / "dev" / replace_first(base, split, "dev")).string();
    if (file_exists(dev)) {
      pool.examples = load_task(dev, task.format).examples;
      pool.in_order = true;
      return pool;
    }
  }
  pool.is_task = true;
  pool.examples = task.examples;
  return pool;
}

std::string safe_file_part(const std::string& s) {
  std::string out;
  for (char ch : s) out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '@') ? ch : '_';
  return out;
}

struct Prepared {
  std::vector<std::string> prompts;                  // [examples] text
  std::vector<LoglikRequest> loglik;                 // multiple choice: the options, or their letters
  std::vector<GenerationRequest> generation;         // generative / refusal
  std::vector<std::vector<int32_t>> texts;           // perplexity: ids
};

class Evaluator {
 public:
  Evaluator(Decoder& d, const Tokenizer& tok, const EvalSettings& s)
      : d_(d), tok_(tok), s_(s), prompter_(tok, s), raw_prompter_(tok, s, /*raw=*/true),
        phrases_(s.refusal_phrases.empty() ? default_refusal_phrases() : s.refusal_phrases) {
    const ModelConfig& c = d.model().config;
    eos_ = c.eos_token_ids;
    if (tok.eos_id) eos_.push_back(*tok.eos_id);
    if (prompter_.chat()) eos_.insert(eos_.end(), tok.extra_eos_ids.begin(), tok.extra_eos_ids.end());
  }
  const Prompter& prompter() const { return prompter_; }
  // Reports examples finished within the current score() call.
  void set_progress(ProgressFn f) { progress_ = std::move(f); }

  Prepared prepare(const Task& task, const std::vector<size_t>& picked, int64_t shots) {
    Prepared p;
    FewshotPool pool;
    if (shots > 0 && task.kind != TaskKind::Perplexity && task.kind != TaskKind::Refusal) pool = fewshot_pool(task, s_);
    for (size_t idx : picked) {
      const TaskExample& e = task.examples[idx];
      Dialogue d;
      d.answer_prefix = e.answer_prefix;
      // Demonstrations: `shots` distinct pool entries, drawn with (seed, example index), or a dev
      // split's first ones.
      if (!pool.examples.empty()) {
        std::vector<size_t> order(pool.examples.size());
        std::iota(order.begin(), order.end(), size_t(0));
        Rng rng(s_.seed * 1000003u + idx);
        if (!pool.in_order)
          for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.next_u64() % i]);
        for (size_t i : order) {
          if (int64_t(d.demos.size()) >= shots) break;
          const TaskExample& x = pool.examples[i];
          if (pool.is_task && x.question == e.question) continue;
          d.demos.push_back(demo_of(task, x));
        }
      }
      d.query = query_of(task, e);
      const std::string text = (task.raw ? raw_prompter_ : prompter_).render(d);
      p.prompts.push_back(text);
      switch (task.kind) {
        case TaskKind::MultipleChoice:
          p.loglik.push_back(task.raw ? loglik_request(raw_prompter_, text, e.choices, e)
                                      : loglik_request(prompter_, text, letter_method(task) ? e.labels : e.choices, e));
          break;
        case TaskKind::Generative:
        case TaskKind::Refusal:
          p.generation.push_back({(task.raw ? raw_prompter_ : prompter_).encode(text)});
          break;
        case TaskKind::Perplexity:
          p.texts.push_back(tok_.encode(e.text, true).ids);
          break;
      }
    }
    return p;
  }

  ModeScore score(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    switch (task.kind) {
      case TaskKind::MultipleChoice:
        return letter_method(task) ? score_mc_letter(task, picked, p) : score_mc_loglik(task, picked, p);
      case TaskKind::Generative: return score_generative(task, picked, p);
      case TaskKind::Refusal: return score_refusal(task, picked, p);
      case TaskKind::Perplexity: return score_perplexity(task, picked, p);
    }
    fail("[eval] unknown task kind");
  }

 private:
  // Plain-text completion tasks are always scored by log-likelihood (letters need a question).
  bool letter_method(const Task& task) const { return s_.mc_method == McMethod::Letter && !task.raw; }
  std::pair<std::string, std::string> demo_of(const Task& task, const TaskExample& x) const {
    if (task.kind == TaskKind::MultipleChoice) {
      if (letter_method(task)) return {x.question + options_block(x) + letter_instruction(), x.answer};
      return {x.question, (x.answer_prefix.empty() ? "" : x.answer_prefix + " ") + x.choices[size_t(x.gold)]};
    }
    return {x.question, x.solution.empty() ? "The answer is " + x.answer + "." : x.solution};
  }
  std::string letter_instruction() const {
    return prompter_.chat() ? "\nAnswer with the letter of the correct option." : "";
  }
  std::string query_of(const Task& task, const TaskExample& e) const {
    if (task.kind == TaskKind::MultipleChoice && letter_method(task))
      return e.question + options_block(e) + letter_instruction();
    return e.question;
  }

  // lm-eval-harness's split: trailing whitespace of the context moves to the continuation, the
  // continuation's tokens are those of encode(context + continuation) after encode(context).
  LoglikRequest loglik_request(const Prompter& prompter, std::string context, const std::vector<std::string>& options,
                               const TaskExample& e) const {
    std::string lead = ends_with_space(context) ? "" : " ";
    size_t cut = context.size();
    while (cut > 0 && ends_with_space(context.substr(0, cut))) --cut;
    lead = context.substr(cut) + lead;
    context.resize(cut);
    LoglikRequest r;
    r.context = prompter.encode(context);
    for (const auto& choice : options) {
      const std::vector<int32_t> whole = prompter.encode(context + lead + choice);
      if (whole.size() > r.context.size() && std::equal(r.context.begin(), r.context.end(), whole.begin()))
        r.continuations.emplace_back(whole.begin() + int64_t(r.context.size()), whole.end());
      else
        r.continuations.push_back(tok_.encode(lead + choice, false).ids);
      TAIA_CHECK(!r.continuations.back().empty(), e.where, ": choice '", choice, "' encodes to no tokens");
    }
    return r;
  }

  ModeScore score_mc_loglik(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    const auto res = score_loglik(d_, p.loglik, s_.batch_size, progress_);
    ModeScore out;
    std::vector<double> acc, acc_norm;
    for (size_t i = 0; i < picked.size(); ++i) {
      const TaskExample& e = task.examples[picked[i]];
      size_t best = 0, best_norm = 0;
      std::vector<double> norm;
      for (size_t k = 0; k < e.choices.size(); ++k) {
        // acc_norm divides by the option's length in bytes, as lm-eval-harness does.
        norm.push_back(res[i].logprob[k] / double(std::max<size_t>(1, e.choices[k].size())));
        if (res[i].logprob[k] > res[i].logprob[best]) best = k;
        if (norm[k] > norm[best_norm]) best_norm = k;
      }
      acc.push_back(int64_t(best) == e.gold ? 1.0 : 0.0);
      acc_norm.push_back(int64_t(best_norm) == e.gold ? 1.0 : 0.0);
      out.samples.push_back(Json{{"where", e.where}, {"prompt", p.prompts[i]}, {"target", e.labels[size_t(e.gold)]},
                                 {"output", e.choices[best]}, {"extracted", e.labels[best]},
                                 {"correct", int64_t(best) == e.gold}, {"logprobs", res[i].logprob},
                                 {"extracted_norm", e.labels[best_norm]}, {"greedy", res[i].greedy}});
    }
    out.entry = metric_entry("acc", acc);
    out.entry["acc_norm"] = mean_of(acc_norm);
    out.entry["acc_norm_stderr"] = standard_error(acc_norm);
    out.entry["method"] = "loglik";
    return out;
  }

  // The paper's letter answer: the option letter the model finds most likely after the listed
  // options (with single-token letters this is the greedy first token among the letters, i.e.
  // generation with an overwhelming logit bias on A-E; with multi-token letters, their sequence
  // probability).
  ModeScore score_mc_letter(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    const auto res = score_loglik(d_, p.loglik, s_.batch_size, progress_);
    ModeScore out;
    std::vector<double> acc;
    for (size_t i = 0; i < picked.size(); ++i) {
      const TaskExample& e = task.examples[picked[i]];
      size_t best = 0;
      for (size_t k = 1; k < e.labels.size(); ++k)
        if (res[i].logprob[k] > res[i].logprob[best]) best = k;
      const bool ok = int64_t(best) == e.gold;
      acc.push_back(ok ? 1.0 : 0.0);
      out.samples.push_back(Json{{"where", e.where}, {"prompt", p.prompts[i]}, {"target", e.labels[size_t(e.gold)]},
                                 {"output", e.labels[best]}, {"extracted", e.labels[best]}, {"correct", ok},
                                 {"logprobs", res[i].logprob}, {"greedy", res[i].greedy}});
    }
    out.entry = metric_entry("acc", acc);
    out.entry["method"] = "letter";
    return out;
  }

  // Where a reply ends besides EOS: plain "Question:/Answer:" prompts where the next "Question:"
  // would start, plain-text (raw) prompts at the line's end (their demonstrations are lines);
  // empty: chat replies end at the template's end-of-turn tokens only.
  std::string reply_end(const Task& task) const {
    if (task.raw) return task.reply_stop.empty() ? "\n" : task.reply_stop;
    return prompter_.chat() ? "" : "Question:";
  }
  GreedyOptions reply_options(int64_t max_new, const std::string& end) {
    GreedyOptions g;
    g.max_new_tokens = max_new;
    g.eos_ids = eos_;
    g.vocab_limit = tok_.vocab_size();
    g.progress = progress_;
    if (!end.empty())
      g.stop = [this, end](size_t, const std::vector<int32_t>& out) {
        return tok_.decode(out, true).find(end) != std::string::npos;
      };
    return g;
  }
  std::vector<std::string> reply_texts(const std::vector<std::vector<int32_t>>& outs, const std::string& end) const {
    std::vector<std::string> texts;
    for (const auto& o : outs) {
      std::string t = tok_.decode(o, true);
      if (!end.empty()) t = t.substr(0, t.find(end));
      texts.push_back(t);
    }
    return texts;
  }

  ModeScore score_generative(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    const auto max_new = std::min<int64_t>(s_.max_new_tokens, d_.model().config.max_position_embeddings - 1);
    const auto outs = generate_greedy(d_, p.generation, reply_options(max_new, reply_end(task)), s_.batch_size);
    std::vector<std::string> replies = reply_texts(outs, reply_end(task));
    std::vector<std::optional<Extracted>> found(picked.size());
    std::vector<size_t> retry;
    for (size_t i = 0; i < picked.size(); ++i) {
      const AnswerStyle style = answer_style(task, task.examples[picked[i]]);
      found[i] = extract_answer(replies[i], style);
      if (!found[i] && s_.second_pass) retry.push_back(i);
    }
    // The paper's second pass: the reply so far + " The answer is", a few more tokens.
    std::vector<std::string> second(picked.size());
    if (!retry.empty()) {
      std::vector<GenerationRequest> again;
      const auto suffix = tok_.encode(" The answer is", false).ids;
      for (size_t i : retry) {
        GenerationRequest g{p.generation[i].prompt};
        g.prompt.insert(g.prompt.end(), outs[i].begin(), outs[i].end());
        g.prompt.insert(g.prompt.end(), suffix.begin(), suffix.end());
        again.push_back(std::move(g));
      }
      GreedyOptions g = reply_options(std::min<int64_t>(16, max_new), "");
      g.stop = [this](size_t, const std::vector<int32_t>& out) {
        return tok_.decode(out, true).find('\n') != std::string::npos;
      };
      g.progress = {};
      const auto outs2 = generate_greedy(d_, again, g, s_.batch_size);
      for (size_t r = 0; r < retry.size(); ++r) {
        const size_t i = retry[r];
        second[i] = tok_.decode(outs2[r], true);
        found[i] = extract_answer("The answer is" + second[i], answer_style(task, task.examples[picked[i]]));
        if (found[i]) found[i]->rule = "second_pass_" + found[i]->rule;
      }
    }
    ModeScore out;
    std::vector<double> acc;
    for (size_t i = 0; i < picked.size(); ++i) {
      const TaskExample& e = task.examples[picked[i]];
      if (!found[i]) found[i] = reply_as_answer(replies[i], answer_style(task, e));
      const bool ok = found[i] && is_gold(*found[i], e);
      acc.push_back(ok ? 1.0 : 0.0);
      Json sample = reply_sample(e, p.prompts[i], replies[i], found[i], ok);
      if (!second[i].empty()) sample["second_pass_output"] = second[i];
      out.samples.push_back(std::move(sample));
    }
    out.entry = metric_entry("acc", acc);
    out.entry["answers_found"] = answers_found_share(found);
    return out;
  }

  ModeScore score_refusal(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    const auto outs = generate_greedy(d_, p.generation, reply_options(s_.refusal_tokens, reply_end(task)), s_.batch_size);
    const auto replies = reply_texts(outs, reply_end(task));
    ModeScore out;
    std::vector<double> refused;
    for (size_t i = 0; i < picked.size(); ++i) {
      const TaskExample& e = task.examples[picked[i]];
      const bool r = is_refusal(replies[i], phrases_);
      refused.push_back(r ? 1.0 : 0.0);
      out.samples.push_back(refusal_sample(e, p.prompts[i], replies[i], r));
    }
    out.entry = refusal_entry(refused);
    return out;
  }

  ModeScore score_perplexity(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
    const int64_t window = std::min<int64_t>(s_.max_length, d_.model().config.max_position_embeddings);
    ModeScore out;
    std::vector<double> bits;
    double bytes = 0;
    for (size_t i = 0; i < picked.size(); ++i) {
      const TaskExample& e = task.examples[picked[i]];
      const bool llama_cpp = s_.perplexity_windows == "llama-cpp";
      const int32_t bos = tok_.bos_id ? int32_t(*tok_.bos_id) : -1;
      const auto lp = llama_cpp ? token_logprobs_llama_cpp(d_, p.texts[i], window, bos)
                                : token_logprobs(d_, p.texts[i], window);
      double sum = 0;
      for (double v : lp) {
        bits.push_back(-v / std::log(2.0));
        sum += v;
      }
      bytes += double(e.text.size());
      out.samples.push_back(Json{{"where", e.where}, {"tokens", p.texts[i].size()}, {"predicted", lp.size()},
                                 {"bits", -sum / std::log(2.0)}, {"bytes", e.text.size()}});
      if (progress_) progress_(i + 1);
    }
    TAIA_CHECK(!bits.empty(), task.path, ": the text is too short to predict any token");
    out.entry = metric_entry("bits_per_token", bits);
    const double total_bits = std::accumulate(bits.begin(), bits.end(), 0.0);
    out.entry["perplexity"] = std::exp(mean_of(bits) * std::log(2.0));
    out.entry["bits_per_byte"] = bytes > 0 ? total_bits / bytes : 0.0;
    out.entry["window"] = window;
    out.entry["windows"] = s_.perplexity_windows;
    return out;
  }

  Decoder& d_;
  const Tokenizer& tok_;
  const EvalSettings& s_;
  Prompter prompter_;
  Prompter raw_prompter_;  // "context" tasks
  std::vector<std::string> phrases_;
  std::vector<int64_t> eos_;
  ProgressFn progress_;
};

// Per group of tasks (a folder: MMLU's subjects) and mode: the macro average (every task alike)
// and the micro average (every example alike) of the tasks' values.
Json group_averages(const Json& task_results, const std::map<std::string, std::vector<std::string>>& members) {
  Json groups = Json::object();
  for (const auto& [group, keys] : members) {
    std::map<std::string, std::vector<std::pair<double, int64_t>>> by_mode;  // mode -> (value, n) per task
    std::string metric;
    for (const auto& key : keys)
      for (const auto& [mode, e] : task_results.at(key).items()) {
        by_mode[mode].push_back({e["value"].get<double>(), e["n"].get<int64_t>()});
        metric = e.value("metric", "");
      }
    for (const auto& [mode, values] : by_mode) {
      double macro = 0, weighted = 0;
      int64_t n = 0;
      for (const auto& [v, count] : values) {
        macro += v;
        weighted += v * double(count);
        n += count;
      }
      groups[group][mode] = Json{{"metric", metric}, {"macro", macro / double(values.size())},
                                 {"micro", n > 0 ? weighted / double(n) : 0.0}, {"n", n}, {"tasks", values.size()}};
    }
  }
  return groups;
}

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
Json score_in_mode(Evaluator& ev, Decoder& decoder, const Task& task, const std::vector<size_t>& picked,
                   const Prepared& prepared, int64_t shots, const std::string& key, const std::string& mode,
                   const EvalSettings& s, const std::string& out_dir, EvalTiming& timing) {
  ProgressBar bar("eval " + key + " / " + mode, int64_t(picked.size()), s.progress);
  const auto t0 = Clock::now();
  const double busy0 = decoder.busy_seconds();
  ev.set_progress([&](size_t done) {
    const double secs = seconds_since(t0);
    char extra[48];
    std::snprintf(extra, sizeof(extra), "%.1f ex/s", secs > 0 ? double(done) / secs : 0.0);
    bar.update(int64_t(done), extra);
  });
  ModeScore score = ev.score(task, picked, prepared);
  ev.set_progress({});
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

std::vector<std::pair<std::string, ModuleMask>> checked_modes(const EvalSettings& s, const LoraAdapter* adapter) {
  std::vector<std::pair<std::string, ModuleMask>> modes;
  for (const auto& m : s.modes) {
    const ModuleMask mask = parse_mode(m);
    const bool any = std::any_of(mask.begin(), mask.end(), [](bool b) { return b; });
    TAIA_CHECK(!any || adapter, "[eval] mode '", m, "' needs an adapter (--adapter DIR)");
    modes.push_back({m, mask});
  }
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
  Evaluator ev(decoder, tok, s);
  settings_json["chat_template"] = ev.prompter().chat() ? Json(ev.prompter().template_name()) : Json(nullptr);
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
      const Prepared prepared = ev.prepare(task, picked, shots);
      timing.prepare += seconds_since(prepare_start);
      for (const auto& [mode, mask] : modes) {
        decoder.set_adapter(adapter, mask);
        const Json e = score_in_mode(ev, decoder, task, picked, prepared, shots, key, mode, s, out_dir, timing);
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

void write_results(const std::string& out_dir, const Json& results) {
  write_file_atomic(out_dir + "/results.json", results.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
}

void write_samples(const std::string& out_dir, const std::string& key, const std::string& mode,
                   const std::vector<Json>& samples) {
  std::string lines;
  for (const Json& sample : samples) lines += sample.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  make_directories(out_dir + "/samples");
  write_file_atomic(out_dir + "/samples/" + safe_file_part(key) + "." + safe_file_part(mode) + ".jsonl", lines);
}

std::vector<std::string> modes_in(const Json& results) {
  std::vector<std::string> modes;
  auto add = [&](const std::string& m) {
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
  };
  if (results.contains("settings") && results["settings"].is_object() && results["settings"].contains("modes") &&
      results["settings"]["modes"].is_array())
    for (const Json& m : results["settings"]["modes"])
      if (m.is_string()) add(m.get<std::string>());
  std::vector<std::string> present;
  for (const auto& [task, by_mode] : results.at("tasks").items())
    if (by_mode.is_object())
      for (const auto& [mode, e] : by_mode.items()) present.push_back(mode);
  modes.erase(std::remove_if(modes.begin(), modes.end(),
                             [&](const std::string& m) {
                               return std::find(present.begin(), present.end(), m) == present.end();
                             }),
              modes.end());
  for (const auto& m : present) add(m);
  return modes;
}

std::string results_markdown(const Json& results) {
  const std::vector<std::string> modes = modes_in(results);
  std::string out = "| task | metric |";
  for (const auto& m : modes) out += " " + m + " |";
  out += "\n|---|---|";
  for (size_t i = 0; i < modes.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& [task, by_mode] : results.at("tasks").items()) {
    std::string metric;
    for (const auto& [mode, e] : by_mode.items()) metric = e.value("metric", "");
    out += "| " + task + " | " + metric + " |";
    for (const auto& m : modes) {
      if (!by_mode.contains(m)) {
        out += " — |";
        continue;
      }
      char buf[64];
      std::snprintf(buf, sizeof(buf), " %.4f ± %.4f |", by_mode[m]["value"].get<double>(),
                    by_mode[m]["stderr"].get<double>());
      out += buf;
    }
    out += "\n";
  }
  if (!results.contains("groups")) return out;
  for (const auto& [group, by_mode] : results["groups"].items())
    for (const char* avg : {"macro", "micro"}) {
      std::string metric;
      for (const auto& [mode, e] : by_mode.items()) metric = e.value("metric", "");
      out += "| " + group + " (" + avg + ", " + std::to_string(by_mode.begin()->value("tasks", int64_t(0))) +
             " tasks) | " + metric + " |";
      for (const auto& m : modes) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), " %.4f |", by_mode.contains(m) ? by_mode[m][avg].get<double>() : 0.0);
        out += by_mode.contains(m) ? std::string(buf) : std::string(" — |");
      }
      out += "\n";
    }
  return out;
}

}  // namespace taia
