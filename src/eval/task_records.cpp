#include "eval/task_records.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/strings.h"

namespace taia {

std::string trim_space(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string option_letter(size_t i) { return std::string(1, char('A' + i)); }

int64_t label_index(const std::vector<std::string>& labels, const std::string& key, const std::string& where,
                    const std::string& field) {
  const std::string k = trim_space(key);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == k) return int64_t(i);
  std::string all;
  for (const auto& l : labels) all += (all.empty() ? "" : ", ") + l;
  fail(where, ": field '", field, "': answer '", k, "' is not one of the option labels (", all, ")");
}

namespace {

// A required string field ("file:line: missing field 'answer' (expected a string)").
std::string need_string(const Json& j, const char* key, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  TAIA_CHECK(it->is_string(), where, ": field '", key, "' expected a string, got ", it->type_name());
  return it->get<std::string>();
}

// A field of any type; a file's layout is recognised from its first record, so a later one may
// lack what the layout reads.
const Json& need_field(const Json& j, const char* key, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  return *it;
}

// A number or a string field, as text ("Answer": 12.0 -> "12").
std::string need_number_text(const Json& j, const char* key, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  if (it->is_string()) return trim_space(it->get<std::string>());
  TAIA_CHECK(it->is_number(), where, ": field '", key, "' expected a number or a string, got ", it->type_name());
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  const double v = it->get<double>();
  if (v == double(int64_t(v))) return std::to_string(int64_t(v));
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  return s;
}

// An option index field: an integer in 0..n-1.
int64_t need_index(const Json& j, const char* key, size_t n, const std::string& where) {
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  TAIA_CHECK(it->is_number_integer(), where, ": field '", key, "' expected an option index (integer), got ",
             it->type_name());
  const int64_t i = it->get<int64_t>();
  TAIA_CHECK(i >= 0 && i < int64_t(n), where, ": field '", key, "' expected an index in 0..", int64_t(n) - 1,
             ", got ", i);
  return i;
}

// A list of option strings ("choices": [...]), labelled A, B, ...
void read_option_list(const Json& list, const char* key, const std::string& where, TaskExample* e) {
  TAIA_CHECK(list.is_array(), where, ": field '", key, "' expected a list of strings, got ", list.type_name());
  for (size_t i = 0; i < list.size(); ++i) {
    TAIA_CHECK(list[i].is_string(), where, ": field '", key, "' item ", i, " expected a string, got ",
               list[i].type_name());
    e->choices.push_back(list[i].get<std::string>());
    e->labels.push_back(option_letter(i));
  }
}

void check_options(const TaskExample& e, const char* key, const std::string& where) {
  TAIA_CHECK(e.choices.size() >= 2 && e.choices.size() <= 26, where, ": field '", key,
             "' expected 2 to 26 options, got ", e.choices.size());
}

// GSM8K's calculator annotations "<<48/2=24>>" are not part of the text a model should see.
std::string strip_calculator(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t open = s.find("<<", i);
    if (open == std::string::npos) break;
    const size_t close = s.find(">>", open);
    if (close == std::string::npos) break;
    out += s.substr(i, open - i);
    i = close + 2;
  }
  return out + s.substr(i);
}

TaskExample parse_gsm8k(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "question", where);
  const std::string sol = need_string(j, "answer", where);
  e.answer = gsm8k_final_answer(sol);
  TAIA_CHECK(!e.answer.empty(), where, ": field 'answer' has no final answer after '####'");
  std::string body = trim_space(strip_calculator(sol.substr(0, sol.rfind("####"))));
  e.solution = (body.empty() ? "" : body + "\n") + "The answer is " + e.answer + ".";
  return e;
}

TaskExample parse_math(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "problem", where);
  e.solution = need_string(j, "solution", where);
  e.answer = first_boxed(e.solution);
  TAIA_CHECK(!e.answer.empty(), where, ": field 'solution' has no \\boxed{...} answer");
  return e;
}

TaskExample parse_svamp(const Json& j, const std::string& where) {
  TaskExample e;
  const std::string body = trim_space(need_string(j, "Body", where));
  const std::string q = trim_space(need_string(j, "Question", where));
  e.question = body.empty() ? q : body + (ends_with(body, ".") ? " " : ". ") + q;
  e.answer = need_number_text(j, "Answer", where);
  e.solution = "The answer is " + e.answer + ".";
  return e;
}

TaskExample parse_bbh(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "input", where);
  e.answer = trim_space(need_number_text(j, "target", where));
  TAIA_CHECK(!e.answer.empty(), where, ": field 'target' is empty");
  e.solution = "The answer is " + e.answer + ".";
  return e;
}

TaskExample parse_advbench(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "goal", where);
  TAIA_CHECK(!trim_space(e.question).empty(), where, ": field 'goal' is empty");
  if (j.contains("target") && j["target"].is_string()) e.answer = j["target"].get<std::string>();
  return e;
}

// ARC / CommonsenseQA: the official {"question": {"stem", "choices": [{"label","text"}]}, "answerKey"},
// HF's {"question": "...", "choices": {"label": [...], "text": [...]}, "answerKey"} and its flattened
// export {"question", "choices.label": [...], "choices.text": [...], "answerKey"}.
TaskExample parse_arc(const Json& j, const std::string& where) {
  TaskExample e;
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto q = j.find("question");
  TAIA_CHECK(q != j.end(), where, ": missing field 'question'");
  const Json* choices = nullptr;
  if (q->is_object()) {
    e.question = need_string(*q, "stem", where);
    if (auto c = q->find("choices"); c != q->end()) choices = &*c;
  } else {
    e.question = need_string(j, "question", where);
  }
  Json flattened;
  if (!choices && j.contains("choices.label") && j.contains("choices.text")) {
    flattened = Json{{"label", j["choices.label"]}, {"text", j["choices.text"]}};
    choices = &flattened;
  }
  if (!choices) {
    auto c = j.find("choices");
    TAIA_CHECK(c != j.end(), where, ": missing field 'choices'");
    choices = &*c;
  }
  if (choices->is_array()) {
    for (const Json& c : *choices) {
      e.labels.push_back(need_number_text(c, "label", where + " (choices)"));
      e.choices.push_back(need_string(c, "text", where + " (choices)"));
    }
  } else {
    TAIA_CHECK(choices->is_object(), where, ": field 'choices' expected a list or an object, got ",
               choices->type_name());
    auto labels = choices->find("label");
    auto texts = choices->find("text");
    TAIA_CHECK(labels != choices->end() && texts != choices->end() && labels->is_array() && texts->is_array() &&
                   labels->size() == texts->size(),
               where, ": field 'choices' expected lists 'label' and 'text' of the same length");
    for (size_t i = 0; i < labels->size(); ++i) {
      TAIA_CHECK(((*labels)[i].is_string() || (*labels)[i].is_number_integer()) && (*texts)[i].is_string(), where,
                 ": field 'choices' item ", i, " expected a label and a text string");
      e.labels.push_back((*labels)[i].is_string() ? (*labels)[i].get<std::string>()
                                                  : std::to_string((*labels)[i].get<int64_t>()));
      e.choices.push_back((*texts)[i].get<std::string>());
    }
  }
  check_options(e, "choices", where);
  e.gold = label_index(e.labels, need_number_text(j, "answerKey", where), where, "answerKey");
  return e;
}

// MedQA: {"question", "options": {"A": "...", ...} or [{"key", "value"}], "answer_idx": "C",
// "answer": option text}; the two answer fields, where both are given, must name the same option.
TaskExample parse_medqa(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "question", where);
  const Json& options = need_field(j, "options", where);
  if (options.is_object()) {
    for (const auto& [label, text] : options.items()) {
      TAIA_CHECK(text.is_string(), where, ": field 'options' entry '", label, "' expected a string, got ",
                 text.type_name());
      e.labels.push_back(label);
      e.choices.push_back(text.get<std::string>());
    }
  } else {
    TAIA_CHECK(options.is_array(), where, ": field 'options' expected an object of labelled options or a list, got ",
               options.type_name());
    for (size_t i = 0; i < options.size(); ++i) {
      const Json& o = options[i];
      if (o.is_string()) {
        e.labels.push_back(option_letter(i));
        e.choices.push_back(o.get<std::string>());
      } else {
        e.labels.push_back(need_string(o, "key", where + " (options)"));
        e.choices.push_back(need_string(o, "value", where + " (options)"));
      }
    }
  }
  check_options(e, "options", where);
  TAIA_CHECK(j.contains("answer_idx") || j.contains("answer"), where, ": missing field 'answer_idx' (or 'answer')");
  int64_t by_text = -1;
  if (j.contains("answer")) {
    const std::string a = need_number_text(j, "answer", where);
    auto it = std::find(e.choices.begin(), e.choices.end(), a);
    by_text = it != e.choices.end() ? int64_t(it - e.choices.begin()) : -1;
    if (by_text < 0 && !j.contains("answer_idx")) by_text = label_index(e.labels, a, where, "answer");
  }
  if (j.contains("answer_idx")) {
    const Json& idx = j["answer_idx"];
    e.gold = idx.is_number_integer() ? need_index(j, "answer_idx", e.choices.size(), where)
                                     : label_index(e.labels, need_number_text(j, "answer_idx", where), where, "answer_idx");
    TAIA_CHECK(!j.contains("answer") || by_text < 0 || by_text == e.gold, where, ": field 'answer' names option ",
               by_text >= 0 ? e.labels[size_t(by_text)] : "?", " but 'answer_idx' names ", e.labels[size_t(e.gold)]);
  } else {
    e.gold = by_text;
  }
  return e;
}

// lm-eval / llm-foundry multiple choice: {"query", "choices": [...], "gold": index}, the query a
// plain-text prompt each choice continues.
TaskExample parse_icl_mc(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "query", where);
  read_option_list(need_field(j, "choices", where), "choices", where, &e);
  check_options(e, "choices", where);
  e.gold = need_index(j, "gold", e.choices.size(), where);
  return e;
}

// llm-foundry question answering: {"context", "answer", "aliases": [...]}: a plain-text prompt,
// a generated reply matched against the answer or any alias.
TaskExample parse_icl_qa(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "context", where);
  e.answer = need_number_text(j, "answer", where);
  TAIA_CHECK(!e.answer.empty(), where, ": field 'answer' is empty");
  if (auto a = j.find("aliases"); a != j.end()) {
    TAIA_CHECK(a->is_array(), where, ": field 'aliases' expected a list of strings, got ", a->type_name());
    for (size_t i = 0; i < a->size(); ++i) {
      TAIA_CHECK((*a)[i].is_string(), where, ": field 'aliases' item ", i, " expected a string");
      e.aliases.push_back((*a)[i].get<std::string>());
    }
  }
  e.solution = e.answer;
  return e;
}

TaskKind generic_kind(const Json& j, const std::string& where) {
  if (auto it = j.find("kind"); it != j.end()) {
    TAIA_CHECK(it->is_string(), where, ": field 'kind' expected a string");
    const std::string s = it->get<std::string>();
    if (s == "mc" || s == "multiple_choice") return TaskKind::MultipleChoice;
    if (s == "generative") return TaskKind::Generative;
    if (s == "perplexity") return TaskKind::Perplexity;
    if (s == "refusal") return TaskKind::Refusal;
    fail(where, ": field 'kind' expected mc, generative, perplexity or refusal, got '", s, "'");
  }
  if (j.contains("choices")) return TaskKind::MultipleChoice;
  if (j.contains("text") && !j.contains("question") && !j.contains("prompt")) return TaskKind::Perplexity;
  return TaskKind::Generative;
}

void parse_generic_choices(const Json& j, const std::string& where, TaskExample* e) {
  auto c = j.find("choices");
  TAIA_CHECK(c != j.end(), where, ": missing field 'choices'");
  read_option_list(*c, "choices", where, e);
  check_options(*e, "choices", where);
  auto a = j.find("answer");
  TAIA_CHECK(a != j.end(), where, ": missing field 'answer'");
  if (a->is_number_integer()) {
    e->gold = need_index(j, "answer", e->choices.size(), where);
  } else {
    TAIA_CHECK(a->is_string(), where, ": field 'answer' expected an index, a letter or a choice's text, got ",
               a->type_name());
    const std::string s = a->get<std::string>();
    auto it = std::find(e->choices.begin(), e->choices.end(), s);
    e->gold = it != e->choices.end() ? int64_t(it - e->choices.begin()) : label_index(e->labels, s, where, "answer");
  }
}

// "demos": [{"question": Q, "answer": A}, ...]: the record's own demonstrations (A is the whole reply).
void parse_record_demos(const Json& j, const std::string& where, bool is_raw, TaskExample* e) {
  auto d = j.find("demos");
  if (d == j.end()) return;
  TAIA_CHECK(!is_raw, where, ": field 'demos' expected with 'question' or 'prompt' (a 'context' holds its own text)");
  TAIA_CHECK(d->is_array(), where, ": field 'demos' expected a list of {\"question\", \"answer\"}, got ", d->type_name());
  for (size_t i = 0; i < d->size(); ++i) {
    const std::string w = where + ": demos[" + std::to_string(i) + "]";
    TAIA_CHECK((*d)[i].is_object(), w, ": expected an object with 'question' and 'answer', got ", (*d)[i].type_name());
    e->demos.push_back({need_string((*d)[i], "question", w), need_string((*d)[i], "answer", w)});
  }
}

// The generic schema (docs/EVAL.md). The first record's kind is the task's kind.
TaskExample parse_generic(const Json& j, const std::string& where, Task* task, bool first) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  // "context": plain-text completion (no template, no Question:/Answer: wrapper), multiple choice.
  const bool is_raw = j.contains("context");
  if (first) task->raw = is_raw;
  TAIA_CHECK(is_raw == task->raw, where, ": this record ", is_raw ? "has" : "has no",
             " field 'context' but the file's first record ", task->raw ? "has" : "has not",
             " (one prompt style per file)");
  TAIA_CHECK(!is_raw || (!j.contains("question") && !j.contains("prompt") && !j.contains("answer_prefix")), where,
             ": field 'context' expected without 'question', 'prompt' or 'answer_prefix'");
  const TaskKind k = generic_kind(j, where);
  if (first) task->kind = k;
  TAIA_CHECK(k == task->kind, where, ": this record is ", task_kind_name(k), " but the file's first record is ",
             task_kind_name(task->kind), " (one kind per file)");
  TAIA_CHECK(!is_raw || k == TaskKind::MultipleChoice, where,
             ": field 'context' expected with 'choices' (multiple choice), got a ", task_kind_name(k), " record");
  TaskExample e;
  if (k == TaskKind::Perplexity) {
    e.text = need_string(j, "text", where);
    return e;
  }
  e.question = is_raw ? need_string(j, "context", where)
               : j.contains("question") ? need_string(j, "question", where) : need_string(j, "prompt", where);
  e.answer_prefix = json_string_or(j, "answer_prefix", "", where);
  parse_record_demos(j, where, is_raw, &e);
  if (k == TaskKind::Refusal) return e;
  if (k == TaskKind::MultipleChoice) {
    parse_generic_choices(j, where, &e);
    return e;
  }
  e.answer = need_number_text(j, "answer", where);
  e.solution = j.contains("solution") ? need_string(j, "solution", where) : "The answer is " + e.answer + ".";
  return e;
}

using Parser = TaskExample (*)(const Json&, const std::string&);

// One JSON record layout: how it is recognised, the fields it reads, its reader. Detection takes
// the first layout whose `matches` holds, in this table's order.
struct Layout {
  const char* format;
  const char* fields;  // for messages
  bool (*matches)(const Json&);
  std::vector<std::string> reads;  // the task-shaping fields it reads (kTaskShaping)
  RecordLayoutInfo info;
  Parser parse;        // null: the generic reader
};

// Fields that change a task's kind or its gold answer: a layout that leaves one unread would
// score another task than the file holds.
const std::vector<std::string> kTaskShaping = {"options", "choices", "choices.label", "choices.text",
                                               "answer_idx", "gold", "answerKey", "aliases", "demos"};

bool has(const Json& j, const char* key) { return j.contains(key); }

const std::vector<Layout>& layouts() {
  static const std::vector<Layout> table = {
      {"svamp", "Body, Question, Answer", [](const Json& j) { return has(j, "Body") && has(j, "Question"); }, {},
       {"svamp", TaskKind::Generative, true, false}, parse_svamp},
      {"math", "problem, solution with \\boxed{}", [](const Json& j) { return has(j, "problem") && has(j, "solution"); },
       {}, {"math", TaskKind::Generative, false, false}, parse_math},
      {"bbh", "input, target", [](const Json& j) { return has(j, "input") && has(j, "target"); }, {},
       {"bbh", TaskKind::Generative, false, false}, parse_bbh},
      {"advbench", "goal, target", [](const Json& j) { return has(j, "goal") && has(j, "target"); }, {},
       {"advbench", TaskKind::Refusal, false, false}, parse_advbench},
      {"medqa", "question, options, answer_idx / answer",
       [](const Json& j) { return has(j, "question") && has(j, "options"); }, {"options", "answer_idx"},
       {"medqa", TaskKind::MultipleChoice, false, false}, parse_medqa},
      {"csqa", "question (+ question_concept), choices, answerKey",
       [](const Json& j) {
         return has(j, "answerKey") && (has(j, "question_concept") || (has(j, "question") && j["question"].is_object() &&
                                                                       j["question"].contains("question_concept")));
       },
       {"choices", "choices.label", "choices.text", "answerKey"}, {"csqa", TaskKind::MultipleChoice, false, false},
       parse_arc},
      {"arc", "question, choices (nested, HF or flattened), answerKey",
       [](const Json& j) { return has(j, "answerKey") && has(j, "question"); },
       {"choices", "choices.label", "choices.text", "answerKey"}, {"arc", TaskKind::MultipleChoice, false, false},
       parse_arc},
      {"icl_mc", "query, choices, gold (lm-eval / llm-foundry)",
       [](const Json& j) { return has(j, "query") && has(j, "choices") && has(j, "gold"); }, {"choices", "gold"},
       {"icl_mc", TaskKind::MultipleChoice, false, true}, parse_icl_mc},
      {"icl_qa", "context, answer, aliases (llm-foundry question answering)",
       [](const Json& j) { return has(j, "context") && has(j, "answer") && !has(j, "choices"); }, {"aliases"},
       {"icl_qa", TaskKind::Generative, false, true}, parse_icl_qa},
      {"gsm8k", "question, answer ending '#### N'",
       [](const Json& j) {
         return has(j, "question") && has(j, "answer") && j["answer"].is_string() &&
                j["answer"].get<std::string>().find("####") != std::string::npos;
       },
       {}, {"gsm8k", TaskKind::Generative, true, false}, parse_gsm8k},
      {"generic", "question / prompt / context / text (+ choices, answer; docs/EVAL.md)",
       [](const Json& j) { return has(j, "question") || has(j, "prompt") || has(j, "context") || has(j, "text"); },
       {"choices", "demos"}, {"generic", TaskKind::Generative, false, false}, nullptr},
  };
  return table;
}

const Layout& layout_named(const std::string& format) {
  for (const Layout& l : layouts())
    if (format == l.format) return l;
  fail("[task_records] unknown record layout '", format, "'");
}

std::string known_layouts() {
  std::string s;
  for (const Layout& l : layouts()) s += std::string(s.empty() ? "" : "; ") + l.format + " (" + l.fields + ")";
  return s;
}

std::string field_names(const Json& j) {
  std::string s;
  if (j.is_object())
    for (const auto& [k, v] : j.items()) s += (s.empty() ? "" : ", ") + k;
  return s.empty() ? "none" : s;
}

// Refuses a record whose task-shaping field the layout would leave unread.
void check_fields_read(const Layout& l, const Json& j, const std::string& where) {
  if (!j.is_object()) return;
  for (const std::string& f : kTaskShaping)
    TAIA_CHECK(!j.contains(f) || std::find(l.reads.begin(), l.reads.end(), f) != l.reads.end(), where,
               ": the record was recognised as ", l.format, " (", l.fields, "), which does not read its field '", f,
               "'; refused rather than scored as another task (fields found: ", field_names(j),
               "; known layouts: ", known_layouts(), ")");
}

}  // namespace

const std::vector<std::string>& record_layout_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Layout& l : layouts()) v.push_back(l.format);
    return v;
  }();
  return names;
}

std::string detect_record_layout(const Json& first, const std::string& where) {
  TAIA_CHECK(first.is_object(), where, ": expected a JSON object record, got ", first.type_name());
  for (const Layout& l : layouts())
    if (l.matches(first)) {
      check_fields_read(l, first, where);
      return l.format;
    }
  fail(where, ": the record is in none of the layouts taia reads (fields found: ", field_names(first),
       "; known layouts: ", known_layouts(), ")");
}

RecordLayoutInfo record_layout_info(const std::string& format) { return layout_named(format).info; }

TaskExample parse_record(const std::string& format, const Json& j, const std::string& where, Task* task, bool first) {
  const Layout& l = layout_named(format);
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  check_fields_read(l, j, where);
  TaskExample e = l.parse ? l.parse(j, where) : parse_generic(j, where, task, first);
  if (e.gold >= 0 && e.answer.empty()) e.answer = e.labels[size_t(e.gold)];
  e.where = where;
  if (auto id = j.find("id"); id != j.end() && (id->is_string() || id->is_number_integer()))
    e.id = id->is_string() ? id->get<std::string>() : std::to_string(id->get<int64_t>());
  return e;
}

}  // namespace taia
