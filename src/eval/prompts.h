// Prompts of `taia eval`: each example rendered (chat template, "Question: / Answer:" text, or
// bare lines for plain-text tasks) with its few-shot demonstrations drawn from a pool, then
// tokenized into the request its task kind's scorer runs.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "eval/scoring.h"
#include "eval/settings.h"
#include "eval/tasks.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace taia {

// The dialogue of one prompt: few-shot (question, answer) pairs, the question, and text the
// reply starts with.
struct Dialogue {
  std::vector<std::pair<std::string, std::string>> demos;
  std::string query;
  std::string answer_prefix;
};

// Renders dialogues through the chat template, or as "Question: ...\nAnswer:" text, or (raw) as
// bare lines, and encodes the text with the BOS rule of that style.
class Prompter {
 public:
  // raw: plain-text completion ("context" tasks): demonstrations and query as bare text lines.
  Prompter(const Tokenizer& tok, const EvalSettings& s, bool raw = false);
  bool chat() const { return chat_; }
  const std::string& template_name() const { return tmpl_.name; }
  std::string render(const Dialogue& d) const;
  // Chat text carries its own BOS (the template writes it); plain text gets the tokenizer's.
  std::vector<int32_t> encode(const std::string& text) const { return tok_.encode(text, !chat_).ids; }

 private:
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  bool raw_ = false;
  bool chat_ = false;
};

// Where few-shot demonstrations come from: --fewshot-file, else a sibling "train" file (test ->
// train in the name), else MMLU's layout (mmlu/test/S_test.csv -> mmlu/dev/S_dev.csv), else the
// task's own examples.
struct FewshotPool {
  std::vector<TaskExample> examples;
  bool is_task = false;   // the task's own examples: never the one being asked
  bool in_order = false;  // a dev split (MMLU's protocol): the first K, in file order
};
FewshotPool fewshot_pool(const Task& task, const EvalSettings& s);

// Every picked example of one task at one shot count, as text and as its scorer's requests.
struct Prepared {
  std::vector<std::string> prompts;                  // [examples] text
  std::vector<LoglikRequest> loglik;                 // multiple choice: the options, or their letters
  std::vector<GenerationRequest> generation;         // generative / refusal
  std::vector<std::vector<int32_t>> texts;           // perplexity: ids
};

// Plain-text completion tasks are always scored by log-likelihood (letters need a question).
bool letter_method(const Task& task, const EvalSettings& s);

class PromptBuilder {
 public:
  PromptBuilder(const Tokenizer& tok, const EvalSettings& s)
      : tok_(tok), s_(s), prompter_(tok, s), raw_prompter_(tok, s, /*raw=*/true) {}
  const Prompter& prompter() const { return prompter_; }
  Prepared prepare(const Task& task, const std::vector<size_t>& picked, int64_t shots) const;

 private:
  Dialogue dialogue(const Task& task, const TaskExample& e, size_t idx, const FewshotPool& pool, int64_t shots) const;
  void add_request(const Task& task, const TaskExample& e, const std::string& text, Prepared& p) const;
  std::pair<std::string, std::string> demo_of(const Task& task, const TaskExample& x) const;
  std::string query_of(const Task& task, const TaskExample& e) const;
  std::string letter_instruction() const;
  LoglikRequest loglik_request(const Prompter& prompter, std::string context, const std::vector<std::string>& options,
                               const TaskExample& e) const;

  const Tokenizer& tok_;
  const EvalSettings& s_;
  Prompter prompter_;
  Prompter raw_prompter_;  // "context" tasks
};

}  // namespace taia
