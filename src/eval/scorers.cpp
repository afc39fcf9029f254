#include "eval/scorers.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "generate/generate.h"
#include "eval/grading.h"
#include "eval/stats.h"

namespace taia {

TaskScorer::TaskScorer(Decoder& d, const Tokenizer& tok, const EvalSettings& s, bool chat)
    : d_(d), tok_(tok), s_(s), chat_(chat),
      phrases_(s.refusal_phrases.empty() ? default_refusal_phrases() : s.refusal_phrases) {
  eos_ = stop_token_ids(d.model().config, &tok, chat_);
}

ModeScore TaskScorer::score(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
  switch (task.kind) {
    case TaskKind::MultipleChoice:
      return letter_method(task, s_) ? mc_letter(task, picked, p) : mc_loglik(task, picked, p);
    case TaskKind::Generative: return generative(task, picked, p);
    case TaskKind::Refusal: return refusal(task, picked, p);
    case TaskKind::Perplexity: return perplexity(task, picked, p);
  }
  fail("[eval] unknown task kind");
}

ModeScore TaskScorer::mc_loglik(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
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
ModeScore TaskScorer::mc_letter(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
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
std::string TaskScorer::reply_end(const Task& task) const {
  if (task.raw) return task.reply_stop.empty() ? "\n" : task.reply_stop;
  return chat_ ? "" : "Question:";
}

GreedyOptions TaskScorer::reply_options(int64_t max_new, const std::string& end) const {
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

std::vector<std::string> TaskScorer::reply_texts(const std::vector<std::vector<int32_t>>& outs,
                                                 const std::string& end) const {
  std::vector<std::string> texts;
  for (const auto& o : outs) {
    std::string t = tok_.decode(o, true);
    if (!end.empty()) t = t.substr(0, t.find(end));
    texts.push_back(t);
  }
  return texts;
}

// The paper's second pass for replies with no answer found: the reply so far + " The answer is",
// a few more tokens up to the line's end. Returns each example's continuation ("" where none ran)
// and fills `found` where it names an answer.
std::vector<std::string> TaskScorer::second_pass(const Task& task, const std::vector<size_t>& picked,
                                                 const Prepared& p, const std::vector<std::vector<int32_t>>& outs,
                                                 int64_t max_new, std::vector<std::optional<Extracted>>& found) const {
  std::vector<std::string> second(picked.size());
  std::vector<size_t> retry;
  for (size_t i = 0; i < picked.size(); ++i)
    if (!found[i]) retry.push_back(i);
  if (retry.empty()) return second;
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
  return second;
}

ModeScore TaskScorer::generative(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
  const auto max_new = std::min<int64_t>(s_.max_new_tokens, d_.model().config.max_position_embeddings - 1);
  const auto outs = generate_greedy(d_, p.generation, reply_options(max_new, reply_end(task)), s_.batch_size);
  const std::vector<std::string> replies = reply_texts(outs, reply_end(task));
  std::vector<std::optional<Extracted>> found(picked.size());
  for (size_t i = 0; i < picked.size(); ++i)
    found[i] = extract_answer(replies[i], answer_style(task, task.examples[picked[i]]));
  const std::vector<std::string> second =
      s_.second_pass ? second_pass(task, picked, p, outs, max_new, found) : std::vector<std::string>(picked.size());
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

ModeScore TaskScorer::refusal(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
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

ModeScore TaskScorer::perplexity(const Task& task, const std::vector<size_t>& picked, const Prepared& p) {
  const int64_t window = std::min<int64_t>(s_.max_length, d_.model().config.max_position_embeddings);
  const bool llama_cpp = s_.perplexity_windows == PerplexityWindows::LlamaCpp;
  const int32_t bos = tok_.bos_id ? int32_t(*tok_.bos_id) : -1;
  ModeScore out;
  std::vector<double> bits;  // [predicted tokens] -log2 p
  double bytes = 0;
  for (size_t i = 0; i < picked.size(); ++i) {
    const TaskExample& e = task.examples[picked[i]];
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
  out.entry["windows"] = perplexity_windows_name(s_.perplexity_windows);
  return out;
}

}  // namespace taia
