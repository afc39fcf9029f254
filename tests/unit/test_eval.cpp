// Task files, answer extraction and the batched scorers (log-likelihood against a direct sum
// over the forward pass, batched greedy generation against one-at-a-time generation).
#include <cmath>
#include <fstream>

#include "core/error.h"
#include "eval/aggregate_results.h"
#include "eval/stats.h"
#include "eval/answers.h"
#include "eval/evaluate.h"
#include "generate/generate.h"
#include "eval/scoring.h"
#include "eval/tasks.h"
#include "io/csv.h"
#include "model/init.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"

namespace taia {
namespace {

const std::string kTasks = std::string(TAIA_TESTS_DIR) + "/eval/tasks/";

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = test::temp_dir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tasks, EveryFormatIsDetectedAndRead) {
  struct Want {
    const char* file;
    const char* format;
    TaskKind kind;
    size_t n;
    int64_t gold0;
    const char* answer0;
  };
  const Want wants[] = {
      {"gsm8k_test.jsonl", "gsm8k", TaskKind::Generative, 3, -1, "7"},
      {"math.jsonl", "math", TaskKind::Generative, 2, -1, "9"},
      {"svamp.json", "svamp", TaskKind::Generative, 2, -1, "5"},
      {"mmlu.csv", "mmlu", TaskKind::MultipleChoice, 3, 1, "B"},
      {"arc.jsonl", "arc", TaskKind::MultipleChoice, 2, 0, "A"},
      {"csqa.jsonl", "csqa", TaskKind::MultipleChoice, 2, 0, "A"},
      {"bbh.json", "bbh", TaskKind::Generative, 2, -1, "no"},
      {"generic_mc.jsonl", "generic", TaskKind::MultipleChoice, 3, 0, "A"},
      {"generic_gen.jsonl", "generic", TaskKind::Generative, 2, -1, "Lily"},
      {"advbench.csv", "advbench", TaskKind::Refusal, 2, -1, "Sure, here is a mean letter"},
      {"retention.txt", "text", TaskKind::Perplexity, 1, -1, ""},
  };
  for (const Want& w : wants) {
    const Task t = load_task(kTasks + w.file);
    EXPECT_EQ(t.format, w.format) << w.file;
    EXPECT_EQ(t.kind, w.kind) << w.file;
    ASSERT_EQ(t.examples.size(), w.n) << w.file;
    EXPECT_EQ(t.examples[0].gold, w.gold0) << w.file;
    EXPECT_EQ(t.examples[0].answer, w.answer0) << w.file;
  }
  const Task gsm = load_task(kTasks + "gsm8k_test.jsonl");
  EXPECT_TRUE(gsm.numeric);
  EXPECT_EQ(gsm.examples[2].answer, "1500");  // thousands separator dropped
  EXPECT_EQ(gsm.examples[0].solution, "Tom has 3 + 4 = 7 balls.\nThe answer is 7.");  // calculator notes dropped
  const Task mmlu = load_task(kTasks + "mmlu.csv");
  EXPECT_EQ(mmlu.examples[1].question, "Which animal says \"moo\", usually?");
  EXPECT_EQ(mmlu.examples[1].choices, (std::vector<std::string>{"cow", "cat", "dog", "bird"}));
  const Task arc = load_task(kTasks + "arc.jsonl");
  EXPECT_EQ(arc.examples[1].labels, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(arc.examples[1].gold, 1);
  const Task mc = load_task(kTasks + "generic_mc.jsonl");
  EXPECT_EQ(mc.examples[1].gold, 0);  // by the choice's text
  EXPECT_EQ(mc.examples[2].gold, 1);  // by letter
  EXPECT_EQ(mc.examples[2].answer_prefix, "It is");
  EXPECT_EQ(load_task(kTasks + "math.jsonl").examples[1].answer, "\\frac{7}{1}");  // nested braces
  const Task svamp = load_task(kTasks + "svamp.json");
  EXPECT_EQ(svamp.examples[0].question, "Jack had 8 pens. If he gave 3 pens away, how many pens does he have?");
  // The override reads a generic file as what it says.
  EXPECT_EQ(load_task(kTasks + "retention.txt", "text").kind, TaskKind::Perplexity);
  EXPECT_NE(error_of([] { load_task(kTasks + "mmlu.csv", "gsm8k"); }).find("mmlu.csv"), std::string::npos);
}

TEST(Tasks, MalformedFilesNameFileLineAndProblem) {
  struct Case {
    const char* name;
    const char* content;
    const char* expect;  // substrings of the message after the path
  };
  const Case cases[] = {
      {"a.jsonl", "{\"question\": \"q\", \"answer\": \"x #### 1\"}\n{\"question\": \"q\"\n", ":2: invalid JSON"},
      {"b.jsonl", "{\"question\": \"q\", \"answer\": \"x #### 1\"}\n{\"question\": \"q\", \"answer\": \"no marker\"}\n",
       ":2: field 'answer' has no final answer"},
      {"c.jsonl", "{\"problem\": \"p\", \"solution\": \"no box\"}\n", ":1: field 'solution' has no \\boxed"},
      {"d.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"]}\n", ":1: missing field 'answer'"},
      {"e.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 5}\n", ":1: field 'answer' expected an index in 0..1"},
      {"f.jsonl", "{\"question\": {\"stem\": \"s\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}, {\"text\": \"b\", \"label\": \"B\"}]}, \"answerKey\": \"E\"}\n",
       ":1: field 'answerKey': answer 'E' is not one of the option labels (A, B)"},
      {"g.csv", "q,a,b,c,d,A\nq2,a,b,c,d,Z\n", ":2: field 'answer (last field)': answer 'Z' is not one of the option labels"},
      {"h.csv", "q,a,b,c,d,A\n\"unclosed,a,b\n", ":2: a quoted field is never closed"},
      {"i.csv", "q,a\n", ":1: expected question, at least 2 options"},
      {"j.jsonl", "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\": \"q\", \"answer\": \"x\"}\n",
       ":2: this record is generative but the file's first record is multiple_choice"},
      {"k.json", "[{\"Body\": \"b\", \"Question\": \"q\"}]", ": record 0: missing field 'Answer'"},
      {"l.txt", "  \n", ": empty text file"},
      {"m.jsonl", "{\"question\": \"q\", \"kind\": \"poem\"}\n", ":1: field 'kind' expected mc, generative"},
      {"n.csv", "goal,target\n,x\n", ":2: empty goal"},
      {"o.json", "{\"examples\": [{\"input\": \"i\"}]}", ": examples[0]: missing field 'target'"},
      {"p.jsonl", "{\"context\": \"c\", \"answer\": \"\"}\n", ":1: field 'answer' is empty"},
      {"s.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"a\", \"B\": \"b\"}, \"answer_idx\": \"E\"}\n",
       ":1: field 'answer_idx': answer 'E' is not one of the option labels (A, B)"},
      {"t.jsonl", "{\"question\": \"q\", \"options\": {}, \"answer_idx\": \"A\"}\n",
       ":1: field 'options' expected 2 to 26 options, got 0"},
      {"u.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"a\", \"B\": \"b\"}, \"answer\": \"a\", \"answer_idx\": \"B\"}\n",
       ":1: field 'answer' names option A but 'answer_idx' names B"},
      {"v.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"a\", \"B\": \"b\"}}\n", ":1: missing field 'answer_idx'"},
      {"w.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 3}\n",
       ":1: field 'gold' expected an index in 0..1, got 3"},
      {"x.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}\n",
       ":1: the record is in none of the layouts taia reads (fields found: choices, query; known layouts: svamp"},
      {"y.jsonl", "{\"question\": \"q\", \"choices\": {\"label\": [], \"text\": []}, \"answerKey\": \"A\"}\n",
       ":1: field 'choices' expected 2 to 26 options, got 0"},
      {"z.jsonl", "{\"question\": \"q\", \"answer\": \"x\", \"gold\": 1}\n",
       ":1: the record was recognised as generic (question / prompt / context / text (+ choices, answer; docs/EVAL.md)), "
       "which does not read its field 'gold'"},
      {"za.jsonl", "{\"question\": \"q\", \"choices\": [], \"answer\": 0}\n", ":1: field 'choices' expected 2 to 26 options, got 0"},
      {"zb.jsonl", "{\"foo\": 1}\n", ":1: the record is in none of the layouts taia reads (fields found: foo;"},
      {"zc.jsonl", "{\"context\": \"c\", \"answer\": \"x\", \"aliases\": \"y\"}\n", ":1: field 'aliases' expected a list"},
      {"q.jsonl", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n",
       ":2: this record has no field 'context' but the file's first record has"},
      {"r.jsonl", "{\"context\": \"c\", \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n",
       ":1: field 'context' expected without 'question'"},
      // The layout comes from the first record; a later one without the field it reads (found by
      // fuzzing: the const operator[] read past the object).
      {"zd.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"query\": \"q\", \"gold\": 1}\n",
       ":2: missing field 'choices'"},
      {"ze.jsonl", "{\"question\": \"q\", \"options\": {\"A\": \"a\", \"B\": \"b\"}, \"answer_idx\": \"A\"}\n"
                   "{\"question\": \"q\", \"answer_idx\": \"A\"}\n", ":2: missing field 'options'"},
  };
  for (const Case& c : cases) {
    const std::string path = write_temp(c.name, c.content);
    const std::string msg = error_of([&] { load_task(path); });
    EXPECT_NE(msg.find(path + c.expect), std::string::npos) << c.name << ": " << msg;
  }
  EXPECT_NE(error_of([] { load_task("/nonexistent/tasks.jsonl"); }).find("no such task file"), std::string::npos);
}

// The layouts the paper's benchmarks circulate in, each recognised from its fields alone: MedQA
// (labelled options object, or a key/value list), ARC flattened by a JSON export, lm-eval /
// llm-foundry multiple choice (query, choices, gold) and question answering (context, answer,
// aliases): the kind, the gold option and the prompt style each one implies.
TEST(Tasks, EveryLayoutIsReadFromItsFields) {
  struct Case {
    const char* name;
    const char* content;
    const char* format;
    TaskKind kind;
    int64_t gold;
    bool raw;
  };
  const Case cases[] = {
      {"medqa.jsonl", "{\"question\": \"q\", \"answer\": \"c\", \"options\": {\"A\": \"a\", \"B\": \"b\", \"C\": \"c\"}, "
                      "\"answer_idx\": \"C\", \"meta_info\": \"step1\"}\n", "medqa", TaskKind::MultipleChoice, 2, false},
      {"medqa_list.jsonl", "{\"question\": \"q\", \"options\": [{\"key\": \"A\", \"value\": \"a\"}, "
                           "{\"key\": \"B\", \"value\": \"b\"}], \"answer_idx\": \"B\"}\n", "medqa",
       TaskKind::MultipleChoice, 1, false},
      {"arc_flat.jsonl", "{\"id\": \"x1\", \"question\": \"q\", \"choices.label\": [\"1\", \"2\", \"3\"], "
                         "\"choices.text\": [\"a\", \"b\", \"c\"], \"answerKey\": \"3\"}\n", "arc",
       TaskKind::MultipleChoice, 2, false},
      {"icl_mc.jsonl", "{\"query\": \"Question: q\\nAnswer:\", \"choices\": [\"a\", \"b\"], \"gold\": 1}\n", "icl_mc",
       TaskKind::MultipleChoice, 1, true},
      {"icl_qa.jsonl", "{\"context\": \"Q: 1+1?\\nA:\", \"answer\": \"2\", \"aliases\": [\"two\"]}\n", "icl_qa",
       TaskKind::Generative, -1, true},
  };
  for (const Case& c : cases) {
    const Task t = load_task(write_temp(c.name, c.content));
    EXPECT_EQ(t.format, c.format) << c.name;
    EXPECT_EQ(t.kind, c.kind) << c.name;
    EXPECT_EQ(t.raw, c.raw) << c.name;
    ASSERT_EQ(t.examples.size(), 1u) << c.name;
    EXPECT_EQ(t.examples[0].gold, c.gold) << c.name;
  }
  const Task arc = load_task(write_temp("arc_flat2.jsonl", cases[2].content));
  EXPECT_EQ(arc.examples[0].id, "x1");
  EXPECT_EQ(arc.examples[0].labels, (std::vector<std::string>{"1", "2", "3"}));
  const Task qa = load_task(write_temp("icl_qa2.jsonl", cases[4].content));
  EXPECT_EQ(qa.examples[0].answer, "2");
  EXPECT_EQ(qa.examples[0].aliases, std::vector<std::string>{"two"});
}

TEST(Csv, QuotesNewlinesAndCrlf) {
  const auto rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\r\n\"multi\nline\",x\n", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"multi\nline", "x"}));
  EXPECT_NE(error_of([] { parse_csv("\"a\"b\n", "t.csv"); }).find("t.csv:1: expected a comma"), std::string::npos);
}

TEST(Answers, ExtractionRules) {
  AnswerStyle numeric{true, {}};
  auto ex = [](const std::string& r, const AnswerStyle& s) {
    auto e = extract_answer(r, s);
    return e ? e->answer + "|" + e->rule : std::string("none");
  };
  EXPECT_EQ(ex("So 3 + 4 = 7. The answer is 7.", numeric), "7|answer_is");
  EXPECT_EQ(ex("the answer is: $1,500 dollars", numeric), "1,500|answer_is");
  EXPECT_EQ(ex("We get \\boxed{\\frac{1}{2}} here", {}), "\\frac{1}{2}|boxed");
  EXPECT_EQ(ex("first 3 then 4 then -12.5 done", numeric), "-12.5|last_number");
  EXPECT_EQ(ex("no digits at all", numeric), "none");
  EXPECT_EQ(ex("The answer is a ball.", {}), "a ball|answer_is");
  EXPECT_EQ(ex("The answer is no. He went home.", {}), "no|answer_is");
  EXPECT_EQ(ex("The answer is 3.5 metres. Then", {}), "3.5 metres|answer_is");
  EXPECT_EQ(ex("The answer is Lily.outs on a tree", {}), "Lily|answer_is");  // no space after the period
  const AnswerStyle letters{false, {"A", "B", "C", "D"}};
  EXPECT_EQ(ex(" (C) because", letters), "C|letter");
  EXPECT_EQ(ex("I think the answer is B.", letters), "B|answer_is");
  EXPECT_EQ(ex("A cat is nice", letters), "A|letter");  // the article counts: it is a standalone letter
  EXPECT_EQ(ex("Banana", letters), "none");
}

TEST(Answers, MatchingAndNormalisation) {
  EXPECT_TRUE(answers_match("1,500", "1500"));
  EXPECT_TRUE(answers_match("0.5", "\\frac{1}{2}"));
  EXPECT_TRUE(answers_match("\\dfrac{1}{2}", "1/2"));
  EXPECT_TRUE(answers_match("7.0004", "7"));
  EXPECT_FALSE(answers_match("7.002", "7"));
  EXPECT_TRUE(answers_match("(B)", "(B)"));
  EXPECT_TRUE(answers_match("B", "(B)"));
  EXPECT_TRUE(answers_match(" Yes.", "yes"));
  EXPECT_FALSE(answers_match("no", "yes"));
  EXPECT_TRUE(answers_match("$12$", "12"));
  EXPECT_EQ(parse_number("50%").value_or(-1), 50.0);
  EXPECT_FALSE(parse_number("nan").has_value());
  EXPECT_FALSE(parse_number("1/0").has_value());
  EXPECT_TRUE(is_refusal("I'm sorry, but I cannot do that.", default_refusal_phrases()));
  EXPECT_FALSE(is_refusal("Sure, here is how.", default_refusal_phrases()));
  EXPECT_EQ(default_refusal_phrases().size(), 29u);
}

ModelConfig eval_config() { return test::small_config(61, 32, 64, 2, 4, 2, 8, 64); }

// Sum of log-softmax at the continuation's positions from one plain forward pass.
double direct_logprob(Decoder& d, const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont) {
  std::vector<int32_t> ids = ctx;
  ids.insert(ids.end(), cont.begin(), cont.end());
  const int64_t V = d.model().config.vocab_size;
  KVCache cache(d.model().config, int64_t(ids.size()));
  std::vector<float> logits(ids.size() * size_t(V));
  d.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), true);
  double sum = 0;
  for (size_t j = 0; j < cont.size(); ++j) {
    const float* row = logits.data() + (ctx.size() + j - 1) * size_t(V);
    double m = row[0], z = 0;
    for (int64_t v = 1; v < V; ++v) m = std::max(m, double(row[v]));
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - m);
    sum += double(row[cont[j]]) - m - std::log(z);
  }
  return sum;
}

TEST(Scoring, LoglikEqualsDirectSumOverTheForwardPass) {
  auto m = init_model(eval_config(), 5, DType::F32, InitScheme::Full, 0.2f);
  Decoder d(*m);
  std::vector<LoglikRequest> reqs{
      {{1, 7, 9, 11}, {{3}, {4, 5}, {6, 7, 8, 9}}},
      {{1, 20}, {{21, 22}, {30}}},
      {{1, 2, 3, 4, 5, 6, 7}, {{8}, {9}}},
  };
  const auto one = score_loglik(d, reqs, 1);
  const auto all = score_loglik(d, reqs, 8);
  for (size_t r = 0; r < reqs.size(); ++r)
    for (size_t k = 0; k < reqs[r].continuations.size(); ++k) {
      const double ref = direct_logprob(d, reqs[r].context, reqs[r].continuations[k]);
      EXPECT_NEAR(one[r].logprob[k], ref, 1e-4) << r << "/" << k;
      EXPECT_NEAR(all[r].logprob[k], ref, 1e-4) << r << "/" << k;
      EXPECT_LT(one[r].logprob[k], 0.0);
    }
}

TEST(Scoring, BatchedGreedyEqualsOneAtATime) {
  auto m = init_model(eval_config(), 9, DType::F32, InitScheme::Full, 0.3f);
  Decoder d(*m);
  std::vector<GenerationRequest> reqs{{{1, 5, 6}}, {{1, 40, 41, 42, 43, 44}}, {{1}}, {{1, 9}}};
  GreedyOptions g;
  g.max_new_tokens = 12;
  g.eos_ids = {2};
  const auto batched = generate_greedy(d, reqs, g, 3);
  for (size_t i = 0; i < reqs.size(); ++i) {
    GenerateOptions o;
    o.max_new_tokens = 12;
    o.eos_ids = {2};
    auto ref = generate(d, reqs[i].prompt, o).output_ids;
    if (!ref.empty() && ref.back() == 2) ref.pop_back();  // generate() keeps the EOS, generate_greedy drops it
    EXPECT_EQ(batched[i], ref) << "request " << i;
  }
}

// A vocabulary limit (the tokenizer's size below padded embedding rows) keeps every generated id
// below it, in batched greedy generation and in generate(); without it this random model picks
// ids above the limit.
TEST(Scoring, GenerationStaysInsideTheVocabularyLimit) {
  auto m = init_model(eval_config(), 9, DType::F32, InitScheme::Full, 0.3f);
  Decoder d(*m);
  const int64_t limit = m->config.vocab_size / 4;
  std::vector<GenerationRequest> reqs{{{1, 5, 6}}, {{1, 40, 41}}, {{1}}};
  GreedyOptions g;
  g.max_new_tokens = 24;
  auto max_id = [](const std::vector<std::vector<int32_t>>& outs) {
    int32_t hi = 0;
    for (const auto& o : outs)
      for (int32_t id : o) hi = std::max(hi, id);
    return hi;
  };
  ASSERT_GE(max_id(generate_greedy(d, reqs, g, 3)), limit) << "the check needs a model that leaves the limit";
  g.vocab_limit = limit;
  EXPECT_LT(max_id(generate_greedy(d, reqs, g, 3)), limit);
  GenerateOptions o;
  o.max_new_tokens = 24;
  o.stop_at_eos = false;
  o.sampling.temperature = 1.0f;
  o.vocab_limit = limit;
  EXPECT_LT(max_id({generate(d, reqs[0].prompt, o).output_ids}), limit);
}

// llama-perplexity's windows: whole chunks, BOS first, the second half scored.
TEST(Scoring, TokenLogprobsWithLlamaCppWindows) {
  auto m = init_model(eval_config(), 4, DType::F32, InitScheme::Full, 0.2f);
  Decoder d(*m);
  std::vector<int32_t> ids;
  for (int i = 0; i < 27; ++i) ids.push_back(int32_t((i * 7 + 3) % 61));
  const auto lp = token_logprobs_llama_cpp(d, ids, 10, 1);
  // Chunks [0,10), [10,20) (the 7-token rest dropped); positions 5..8 of each predict 6..9.
  ASSERT_EQ(lp.size(), 8u);
  std::vector<int32_t> chunk(ids.begin() + 10, ids.begin() + 20);
  chunk[0] = 1;  // BOS replaces the chunk's first input
  EXPECT_NEAR(lp[4], direct_logprob(d, std::vector<int32_t>(chunk.begin(), chunk.begin() + 6), {chunk[6]}), 1e-4);
  EXPECT_NEAR(lp[7], direct_logprob(d, std::vector<int32_t>(chunk.begin(), chunk.begin() + 9), {chunk[9]}), 1e-4);
}

TEST(Scoring, TokenLogprobsWindowsAreIndependentChunks) {
  auto m = init_model(eval_config(), 4, DType::F32, InitScheme::Full, 0.2f);
  Decoder d(*m);
  std::vector<int32_t> ids;
  for (int i = 0; i < 23; ++i) ids.push_back(int32_t((i * 7 + 3) % 61));
  const auto lp = token_logprobs(d, ids, 10);
  // Inputs in windows [0,10), [10,20), [20,22): every token after the first is predicted once;
  // a window's first input was the previous window's last target.
  ASSERT_EQ(lp.size(), 22u);
  const std::vector<int32_t> w1(ids.begin() + 10, ids.begin() + 13);
  EXPECT_NEAR(lp[12], direct_logprob(d, w1, {ids[13]}), 1e-4);  // log p(ids[13] | ids[10..12])
  EXPECT_NEAR(lp[9], direct_logprob(d, std::vector<int32_t>(ids.begin(), ids.begin() + 10), {ids[10]}), 1e-4);
  EXPECT_NEAR(lp[0], direct_logprob(d, {ids[0]}, {ids[1]}), 1e-4);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// A "context" task is plain-text completion: BOS + the context, then each choice, with no
// "Question:/Answer:" wrapper and no template; its log-likelihoods equal the direct sum.
TEST(Scoring, ContextTasksScoreThePlainTextCompletion) {
  const auto tok = load_tokenizer(test::fixtures_dir() + "/models/stories260K/tok512.model");
  ModelConfig c = test::small_config(512, 32, 64, 2, 4, 2, 8, 64);
  auto m = init_model(c, 11, DType::F32, InitScheme::Full, 0.2f);
  Decoder d(*m);
  const std::string path = write_temp("completion.jsonl",
                                      "{\"context\": \"Once upon a time there was a\", \"choices\": [\"girl\", \"big dog\"], \"answer\": 1}\n"
                                      "{\"context\": \"The cat sat\", \"choices\": [\"on\", \"down\", \"up\"], \"answer\": 0}\n");
  const Task task = load_task(path);
  ASSERT_TRUE(task.raw);
  EvalSettings s;
  s.progress = false;
  const std::string out = test::temp_dir();
  Json results = run_eval(d, *tok, nullptr, {task}, s, out, Json::object(), [](const std::string&) {});
  const auto records = read_json_records(out + "/samples/completion.base.jsonl");
  ASSERT_EQ(records.size(), 2u);
  for (size_t i = 0; i < records.size(); ++i) {
    const TaskExample& e = task.examples[i];
    EXPECT_EQ(records[i].value["prompt"].get<std::string>(), e.question);
    const auto context = tok->encode(e.question, true).ids;
    for (size_t k = 0; k < e.choices.size(); ++k) {
      const auto whole = tok->encode(e.question + " " + e.choices[k], true).ids;
      ASSERT_TRUE(std::equal(context.begin(), context.end(), whole.begin()));
      const std::vector<int32_t> cont(whole.begin() + int64_t(context.size()), whole.end());
      EXPECT_NEAR(records[i].value["logprobs"][k].get<double>(), direct_logprob(d, context, cont), 1e-4) << i << "/" << k;
    }
  }
  EXPECT_EQ(results["tasks"]["completion"]["base"]["n"].get<int64_t>(), 2);
}

// A record's own "demos" come before its question as earlier chat turns (and drawn shots are
// refused beside them); a malformed list names the record and the entry.
TEST(Tasks, RecordDemosAreRenderedAsEarlierTurns) {
  const auto tok = load_tokenizer(test::fixtures_dir() + "/models/stories260K/tok512.model");
  ModelConfig c = test::small_config(512, 32, 64, 2, 4, 2, 8, 64);
  auto m = init_model(c, 11, DType::F32, InitScheme::Full, 0.2f);
  Decoder d(*m);
  const std::string path = write_temp(
      "demos.jsonl",
      "{\"question\": \"Q3\", \"choices\": [\"a\", \"b\"], \"answer\": 1, \"demos\": [{\"question\": \"Q1\", "
      "\"answer\": \"R1\"}, {\"question\": \"Q2\", \"answer\": \"R2\"}]}\n");
  const Task task = load_task(path);
  ASSERT_EQ(task.examples[0].demos.size(), 2u);
  EvalSettings s;
  s.progress = false;
  s.chat_template = "chatml";
  const std::string out = test::temp_dir() + "/demos";
  run_eval(d, *tok, nullptr, {task}, s, out, Json::object(), [](const std::string&) {});
  const auto records = read_json_records(out + "/samples/demos.base.jsonl");
  ASSERT_EQ(records.size(), 1u);
  const std::string prompt = records[0].value["prompt"].get<std::string>();
  const size_t q1 = prompt.find("Q1"), r1 = prompt.find("R1"), q2 = prompt.find("Q2"), r2 = prompt.find("R2"),
               q3 = prompt.find("Q3");
  EXPECT_TRUE(q1 < r1 && r1 < q2 && q2 < r2 && r2 < q3 && q3 != std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<|im_start|>assistant\nR1"), std::string::npos) << prompt;
  s.shots = {2};
  EXPECT_NE(error_of([&] { run_eval(d, *tok, nullptr, {task}, s, out, Json::object(), [](const std::string&) {}); })
                .find("has its own demos; expected --shots 0"),
            std::string::npos);
  const std::string bad = write_temp("bad_demos.jsonl", "{\"question\": \"Q\", \"answer\": \"1\", \"demos\": [{\"question\": \"x\"}]}\n");
  EXPECT_NE(error_of([&] { load_task(bad); }).find("bad_demos.jsonl:1: demos[0]: missing field 'answer'"), std::string::npos)
      << error_of([&] { load_task(bad); });
}

// Student's t tails against textbook critical values (two-sided 5 % and 1 %), the quantile
// inverting them, and Holm's adjustment worked by hand.
TEST(Stats, StudentTTailsQuantilesAndHolm) {
  EXPECT_NEAR(t_two_sided_p(12.706, 1), 0.05, 1e-4);
  EXPECT_NEAR(t_two_sided_p(4.303, 2), 0.05, 1e-4);
  EXPECT_NEAR(t_two_sided_p(-2.776, 4), 0.05, 1e-4);
  EXPECT_NEAR(t_two_sided_p(3.169, 10), 0.01, 1e-4);
  EXPECT_NEAR(t_two_sided_p(1.959964, 100000), 0.05, 1e-4);
  EXPECT_DOUBLE_EQ(t_two_sided_p(0, 5), 1.0);
  EXPECT_NEAR(t_quantile(0.975, 4), 2.776445, 1e-5);
  EXPECT_NEAR(t_quantile(0.995, 10), 3.169273, 1e-5);
  EXPECT_NEAR(t_quantile(0.025, 2), -4.302653, 1e-5);
  const std::vector<double> adjusted = holm_adjust({0.01, 0.04, 0.03, 0.005});
  // sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> non-decreasing 0.04 -> 0.06
  const std::vector<double> want{0.03, 0.06, 0.06, 0.02};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(adjusted[i], want[i], 1e-12) << i;
  // A claim family: the p of a difference whose interval just touches 0 is 0.05; Holm over two.
  std::vector<Claim> claims(2);
  claims[0].difference = PairedDifference{1.0, 0.0, 2.0, 5};  // half-width t(4) * se = 1
  claims[1].difference = PairedDifference{-3.0, -4.0, -2.0, 5};
  correct_for_multiplicity(claims);
  EXPECT_NEAR(claims[0].p, 0.05, 1e-3);
  EXPECT_NEAR(claims[0].p_holm, 0.05, 1e-3);  // the larger p, times 1
  EXPECT_NEAR(claims[1].p_holm, 2 * claims[1].p, 1e-12);
  EXPECT_EQ(claims[1].verdict_corrected, "contradicted");
  EXPECT_EQ(claims[0].verdict_corrected, "not shown");
  EXPECT_LT(claims[0].low_corrected, 0.0);  // the simultaneous interval is wider than the 95 % one
  EXPECT_GT(claims[0].high_corrected, 2.0);
  // Two runs with the same difference: a zero-width interval, no evidence either way.
  std::vector<Claim> tied(2);
  tied[0].difference = PairedDifference{16.0, 16.0, 16.0, 2};
  tied[1].difference = PairedDifference{-3.0, -4.0, -2.0, 5};
  correct_for_multiplicity(tied);
  EXPECT_TRUE(tied[0].difference.no_spread() && !tied[0].difference.excludes_zero());
  EXPECT_DOUBLE_EQ(tied[0].p, 1.0);
  EXPECT_EQ(tied[0].verdict_corrected, "not shown (no spread)");
  EXPECT_EQ(tied[1].verdict_corrected, "contradicted");
}

// Student's t quantiles against textbook values, and a 95 % interval.
TEST(Stats, StudentTQuantilesAndIntervals) {
  EXPECT_NEAR(t_quantile_975(1), 12.706, 1e-3);
  EXPECT_NEAR(t_quantile_975(8), 2.306, 1e-3);
  EXPECT_NEAR(t_quantile_975(30), 2.042, 1e-3);
  EXPECT_NEAR(t_quantile_975(40), 2.021, 1e-3);
  EXPECT_NEAR(t_quantile_975(60), 2.000, 1e-3);
  EXPECT_NEAR(t_quantile_975(120), 1.980, 1e-3);
  EXPECT_NEAR(t_quantile_975(100000), 1.960, 1e-3);
  const Interval i = mean_interval_95({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(i.mean, 2.5);
  EXPECT_NEAR(i.high - i.mean, 3.182 * std::sqrt(5.0 / 3.0 / 4.0), 1e-9);
  EXPECT_NEAR(i.mean - i.low, i.high - i.mean, 1e-12);
  EXPECT_EQ(mean_interval_95({7.0}).low, 7.0);
}

// Worlds as clusters: three worlds of two runs each -> the interval over the three world means
// (2, 3, 7: mean 4, sd sqrt(7)) with t(2), not over the six runs with t(5).
TEST(Stats, ClusteredIntervalIsOverTheClusterMeans) {
  const std::vector<double> runs{1.0, 3.0, 2.0, 4.0, 6.0, 8.0};
  const Interval c = clustered_mean_interval_95(runs, 3);
  EXPECT_EQ(c.n, 3);
  EXPECT_DOUBLE_EQ(c.mean, 4.0);
  EXPECT_NEAR(c.high - c.mean, 4.302653 * std::sqrt(7.0 / 3.0), 1e-3);
  const Interval flat = mean_interval_95(runs);
  EXPECT_EQ(flat.n, 6);
  EXPECT_LT(flat.high - flat.mean, c.high - c.mean);  // treating the runs as independent is narrower
  EXPECT_DOUBLE_EQ(clustered_mean_interval_95(runs, 1).high, flat.high);
  EXPECT_THROW(clustered_mean_interval_95({1.0, 2.0, 3.0}, 2), Error);
  // The unit travels with the difference through results.json and is checked on reading.
  const PairedDifference d{c.mean, c.low, c.high, c.n, "world"};
  EXPECT_EQ(PairedDifference::from_json(d.to_json(), "t").unit, "world");
  Json old = d.to_json();
  old.erase("unit");
  EXPECT_EQ(PairedDifference::from_json(old, "t").unit, "run");
  old["unit"] = "seed";
  EXPECT_THROW(PairedDifference::from_json(old, "t"), Error);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

AggregateResults sample_aggregate() {
  AggregateResults a;
  a.paired["facts-lora · knowledge_chat"]["taia-vanilla"] = PairedDifference{0.25, 0.125, 0.375, 3};
  a.claims.push_back(Claim{"facts-lora", "TAIA keeps more", "knowledge_chat", "taia-vanilla", "reproduced",
                           PairedDifference{0.25, 0.125, 0.375, 3}});
  a.drift["facts-lora"]["taia"] = MeanDrift{{0.5, 0.25}, {0.0, 0.0}, {0.875, 0.75}, {1.0, 1.0}};
  a.sweep = RankSweep{"facts-lora", {4, 16}, {}};
  a.sweep->tasks["facts"]["taia"] = {{0.5, std::nullopt}, {0.25, 0.75}};
  return a;
}

}  // namespace

// The demo writes its aggregate through to_json and the report reads it through from_json: the
// JSON survives the round trip field for field, and a malformed field is named.
TEST(AggregateResults, RoundTripAndMalformedFieldsAreNamed) {
  Json written = Json{{"tasks", Json::object()}};
  sample_aggregate().add_to(written);
  const AggregateResults read = AggregateResults::from_json(written, "results.json");
  ASSERT_EQ(read.claims.size(), 1u);
  EXPECT_EQ(read.claims[0].difference.n, 3);
  EXPECT_EQ(read.claims[0].key(), "facts-lora · knowledge_chat");
  EXPECT_FALSE(read.sweep->tasks.at("facts").at("taia")[0][1].has_value());
  EXPECT_DOUBLE_EQ(read.drift.at("facts-lora").at("taia").attention_cosine[1], 0.75);
  Json again = Json{{"tasks", Json::object()}};
  read.add_to(again);
  EXPECT_EQ(again, written);
  EXPECT_TRUE(AggregateResults::from_json(Json{{"tasks", Json::object()}}, "plain").empty());

  auto read_error = [](const Json& results) {
    return error_of([&] { AggregateResults::from_json(results, "results.json"); });
  };
  Json bad = written;
  bad["claims"][0]["low"] = "low";
  EXPECT_NE(read_error(bad).find("results.json: claims[0]: field 'low' expected a number"), std::string::npos) << read_error(bad);
  bad = written;
  bad["sweep"]["tasks"]["facts"]["taia"][1] = Json::array({0.5});
  EXPECT_NE(read_error(bad).find("expected rows of 2 cells"), std::string::npos) << read_error(bad);
  bad = written;
  bad["paired"]["facts-lora · knowledge_chat"]["taia-vanilla"].erase("n");
  EXPECT_NE(read_error(bad).find("results.json: paired.facts-lora · knowledge_chat.taia-vanilla: missing required field 'n'"), std::string::npos) << read_error(bad);
}

}  // namespace taia
