#include "eval/prompts.h"

#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/rng.h"

namespace taia {
namespace {

bool ends_with_space(const std::string& s) {
  return !s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r');
}

std::string options_block(const TaskExample& e) {
  std::string s;
  for (size_t i = 0; i < e.choices.size(); ++i) s += "\n" + e.labels[i] + ". " + e.choices[i];
  return s;
}

std::string replace_first(std::string s, const std::string& from, const std::string& to) {
  const size_t p = s.find(from);
  return p == std::string::npos ? s : s.replace(p, from.size(), to);
}

}  // namespace

Prompter::Prompter(const Tokenizer& tok, const EvalSettings& s, bool raw) : tok_(tok), raw_(raw) {
  if (!s.chat || raw) return;
  tmpl_ = s.chat_template.empty() ? chat_template_for(tok) : chat_template_by_name(s.chat_template);
  chat_ = tmpl_.format != ChatFormat::Raw;
}

std::string Prompter::render(const Dialogue& d) const {
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

const EnumWords<McMethod>& mc_method_words() {
  static const EnumWords<McMethod> words{{"loglik", McMethod::Loglik}, {"letter", McMethod::Letter}};
  return words;
}

const EnumWords<PerplexityWindows>& perplexity_windows_words() {
  static const EnumWords<PerplexityWindows> words{{"disjoint", PerplexityWindows::Disjoint},
                                                  {"llama-cpp", PerplexityWindows::LlamaCpp}};
  return words;
}

std::string mc_method_name(McMethod m) {
  const std::string* word = word_of(mc_method_words(), m);
  TAIA_CHECK(word, "[eval] unknown multiple-choice method");
  return *word;
}

std::string perplexity_windows_name(PerplexityWindows w) {
  const std::string* word = word_of(perplexity_windows_words(), w);
  TAIA_CHECK(word, "[eval] unknown perplexity windows");
  return *word;
}

bool letter_method(const Task& task, const EvalSettings& s) { return s.mc_method == McMethod::Letter && !task.raw; }

Prepared PromptBuilder::prepare(const Task& task, const std::vector<size_t>& picked, int64_t shots) const {
  Prepared p;
  FewshotPool pool;
  if (shots > 0 && task.kind != TaskKind::Perplexity && task.kind != TaskKind::Refusal) pool = fewshot_pool(task, s_);
  for (size_t idx : picked) {
    const TaskExample& e = task.examples[idx];
    const std::string text = (task.raw ? raw_prompter_ : prompter_).render(dialogue(task, e, idx, pool, shots));
    p.prompts.push_back(text);
    add_request(task, e, text, p);
  }
  return p;
}

// Demonstrations: `shots` distinct pool entries, drawn with (seed, example index), or a dev
// split's first ones; never the asked question itself.
Dialogue PromptBuilder::dialogue(const Task& task, const TaskExample& e, size_t idx, const FewshotPool& pool,
                                 int64_t shots) const {
  Dialogue d;
  d.answer_prefix = e.answer_prefix;
  if (!e.demos.empty()) {  // the record's own demonstrations; drawn ones would mix two designs
    TAIA_CHECK(shots == 0, e.where, ": the record has its own demos; expected --shots 0, got ", shots);
    d.demos = e.demos;
  }
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
  return d;
}

// The request the task kind's scorer runs on the rendered text.
void PromptBuilder::add_request(const Task& task, const TaskExample& e, const std::string& text, Prepared& p) const {
  switch (task.kind) {
    case TaskKind::MultipleChoice:
      p.loglik.push_back(task.raw ? loglik_request(raw_prompter_, text, e.choices, e)
                                  : loglik_request(prompter_, text, letter_method(task, s_) ? e.labels : e.choices, e));
      break;
    case TaskKind::Generative:
    case TaskKind::Refusal: p.generation.push_back({(task.raw ? raw_prompter_ : prompter_).encode(text)}); break;
    case TaskKind::Perplexity: p.texts.push_back(tok_.encode(e.text, true).ids); break;
  }
}

std::pair<std::string, std::string> PromptBuilder::demo_of(const Task& task, const TaskExample& x) const {
  if (task.kind == TaskKind::MultipleChoice) {
    if (letter_method(task, s_)) return {x.question + options_block(x) + letter_instruction(), x.answer};
    return {x.question, (x.answer_prefix.empty() ? "" : x.answer_prefix + " ") + x.choices[size_t(x.gold)]};
  }
  return {x.question, x.solution.empty() ? "The answer is " + x.answer + "." : x.solution};
}

std::string PromptBuilder::letter_instruction() const {
  return prompter_.chat() ? "\nAnswer with the letter of the correct option." : "";
}

std::string PromptBuilder::query_of(const Task& task, const TaskExample& e) const {
  if (task.kind == TaskKind::MultipleChoice && letter_method(task, s_))
    return e.question + options_block(e) + letter_instruction();
  return e.question;
}

// lm-eval-harness's split: trailing whitespace of the context moves to the continuation, the
// continuation's tokens are those of encode(context + continuation) after encode(context).
LoglikRequest PromptBuilder::loglik_request(const Prompter& prompter, std::string context,
                                            const std::vector<std::string>& options, const TaskExample& e) const {
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

}  // namespace taia
