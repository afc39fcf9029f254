#include "eval/tasks.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/error.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "io/csv.h"

namespace taia {

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::MultipleChoice: return "multiple_choice";
    case TaskKind::Generative: return "generative";
    case TaskKind::Perplexity: return "perplexity";
    case TaskKind::Refusal: return "refusal";
  }
  return "?";
}

const std::vector<std::string>& task_format_names() {
  static const std::vector<std::string> names{"gsm8k", "math", "svamp", "mmlu",     "arc",
                                              "csqa",  "bbh",  "text",  "advbench", "generic"};
  return names;
}

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string stem_of(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = base.find('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::string letter(size_t i) { return std::string(1, char('A' + i)); }

// A required string field ("file:line: missing field 'answer' (expected a string)").
std::string need_string(const Json& j, const char* key, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  TAIA_CHECK(it->is_string(), where, ": field '", key, "' expected a string, got ", it->type_name());
  return it->get<std::string>();
}

// A number or a string field, as text ("Answer": 12.0 -> "12").
std::string need_number_text(const Json& j, const char* key, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto it = j.find(key);
  TAIA_CHECK(it != j.end(), where, ": missing field '", key, "'");
  if (it->is_string()) return trim(it->get<std::string>());
  TAIA_CHECK(it->is_number(), where, ": field '", key, "' expected a number or a string, got ", it->type_name());
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  const double v = it->get<double>();
  if (v == double(int64_t(v))) return std::to_string(int64_t(v));
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  return s;
}

int64_t label_index(const std::vector<std::string>& labels, const std::string& key, const std::string& where) {
  const std::string k = trim(key);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == k) return int64_t(i);
  std::string all;
  for (const auto& l : labels) all += (all.empty() ? "" : ", ") + l;
  fail(where, ": answer '", k, "' is not one of the option labels (", all, ")");
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
  std::string body = trim(strip_calculator(sol.substr(0, sol.rfind("####"))));
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
  const std::string body = trim(need_string(j, "Body", where));
  const std::string q = trim(need_string(j, "Question", where));
  e.question = body.empty() ? q : body + (ends_with(body, ".") ? " " : ". ") + q;
  e.answer = need_number_text(j, "Answer", where);
  e.solution = "The answer is " + e.answer + ".";
  return e;
}

TaskExample parse_bbh(const Json& j, const std::string& where) {
  TaskExample e;
  e.question = need_string(j, "input", where);
  e.answer = trim(need_number_text(j, "target", where));
  e.solution = "The answer is " + e.answer + ".";
  return e;
}

// ARC / CommonsenseQA: {"question": {"stem", "choices": [{"label","text"}]}, "answerKey"} or the
// HF form {"question": "...", "choices": {"label": [...], "text": [...]}, "answerKey"}.
TaskExample parse_arc(const Json& j, const std::string& where) {
  TaskExample e;
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  auto q = j.find("question");
  TAIA_CHECK(q != j.end(), where, ": missing field 'question'");
  const Json* choices = nullptr;
  if (q->is_object()) {
    e.question = need_string(*q, "stem", where);
    auto c = q->find("choices");
    if (c != q->end()) choices = &*c;
  } else {
    e.question = need_string(j, "question", where);
  }
  if (!choices) {
    auto c = j.find("choices");
    TAIA_CHECK(c != j.end(), where, ": missing field 'choices'");
    choices = &*c;
  }
  if (choices->is_array()) {
    for (const Json& c : *choices) {
      e.labels.push_back(need_string(c, "label", where + " (choices)"));
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
      TAIA_CHECK((*labels)[i].is_string() && (*texts)[i].is_string(), where, ": choice ", i, " expected strings");
      e.labels.push_back((*labels)[i].get<std::string>());
      e.choices.push_back((*texts)[i].get<std::string>());
    }
  }
  TAIA_CHECK(e.choices.size() >= 2, where, ": expected at least 2 choices, got ", e.choices.size());
  e.gold = label_index(e.labels, need_number_text(j, "answerKey", where), where);
  return e;
}

// The generic schema (docs/EVAL.md). The first record's kind is the task's kind.
TaskExample parse_generic(const Json& j, const std::string& where, TaskKind* kind, bool* raw, bool first) {
  TAIA_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  // "context": plain-text completion (no template, no Question:/Answer: wrapper), multiple choice.
  const bool is_raw = j.contains("context");
  if (first) *raw = is_raw;
  TAIA_CHECK(is_raw == *raw, where, ": this record ", is_raw ? "has" : "has no", " field 'context' but the file's first record ",
             *raw ? "has" : "has not", " (one prompt style per file)");
  TAIA_CHECK(!is_raw || (!j.contains("question") && !j.contains("prompt") && !j.contains("answer_prefix")), where,
             ": field 'context' expected without 'question', 'prompt' or 'answer_prefix'");
  TaskKind k;
  if (auto it = j.find("kind"); it != j.end()) {
    TAIA_CHECK(it->is_string(), where, ": field 'kind' expected a string");
    const std::string s = it->get<std::string>();
    if (s == "mc" || s == "multiple_choice") k = TaskKind::MultipleChoice;
    else if (s == "generative") k = TaskKind::Generative;
    else if (s == "perplexity") k = TaskKind::Perplexity;
    else if (s == "refusal") k = TaskKind::Refusal;
    else fail(where, ": field 'kind' expected mc, generative, perplexity or refusal, got '", s, "'");
  } else if (j.contains("choices")) {
    k = TaskKind::MultipleChoice;
  } else if (j.contains("text") && !j.contains("question") && !j.contains("prompt")) {
    k = TaskKind::Perplexity;
  } else {
    k = TaskKind::Generative;
  }
  if (first) *kind = k;
  TAIA_CHECK(k == *kind, where, ": this record is ", task_kind_name(k), " but the file's first record is ",
             task_kind_name(*kind), " (one kind per file)");
  TAIA_CHECK(!is_raw || k == TaskKind::MultipleChoice, where, ": field 'context' expected with 'choices' (multiple choice), got a ",
             task_kind_name(k), " record");
  TaskExample e;
  if (k == TaskKind::Perplexity) {
    e.text = need_string(j, "text", where);
    return e;
  }
  e.question = is_raw ? need_string(j, "context", where)
               : j.contains("question") ? need_string(j, "question", where) : need_string(j, "prompt", where);
  e.answer_prefix = json_string_or(j, "answer_prefix", "", where);
  if (k == TaskKind::Refusal) return e;
  if (k == TaskKind::MultipleChoice) {
    auto c = j.find("choices");
    TAIA_CHECK(c != j.end() && c->is_array() && c->size() >= 2, where, ": field 'choices' expected a list of at least 2 strings");
    for (size_t i = 0; i < c->size(); ++i) {
      TAIA_CHECK((*c)[i].is_string(), where, ": choice ", i, " expected a string, got ", (*c)[i].type_name());
      e.choices.push_back((*c)[i].get<std::string>());
      e.labels.push_back(letter(i));
    }
    TAIA_CHECK(e.choices.size() <= 26, where, ": at most 26 choices, got ", e.choices.size());
    auto a = j.find("answer");
    TAIA_CHECK(a != j.end(), where, ": missing field 'answer'");
    if (a->is_number_integer()) {
      const int64_t i = a->get<int64_t>();
      TAIA_CHECK(i >= 0 && i < int64_t(e.choices.size()), where, ": field 'answer' expected an index in 0..",
                 e.choices.size() - 1, ", got ", i);
      e.gold = i;
    } else {
      TAIA_CHECK(a->is_string(), where, ": field 'answer' expected an index, a letter or a choice's text, got ",
                 a->type_name());
      const std::string s = a->get<std::string>();
      auto it = std::find(e.choices.begin(), e.choices.end(), s);
      e.gold = it != e.choices.end() ? int64_t(it - e.choices.begin()) : label_index(e.labels, s, where);
    }
    e.answer = e.labels[size_t(e.gold)];
    return e;
  }
  e.answer = need_number_text(j, "answer", where);
  e.solution = j.contains("solution") ? need_string(j, "solution", where) : "The answer is " + e.answer + ".";
  return e;
}

std::string detect_record_format(const Json& j) {
  if (!j.is_object()) return "generic";
  if (j.contains("Body") && j.contains("Question")) return "svamp";
  if (j.contains("problem") && j.contains("solution")) return "math";
  if (j.contains("input") && j.contains("target")) return "bbh";
  if (j.contains("goal") && j.contains("target")) return "advbench";
  if (j.contains("answerKey")) {
    const bool has_concept = j.contains("question_concept") ||
                         (j.contains("question") && j["question"].is_object() && j["question"].contains("question_concept"));
    return has_concept ? "csqa" : "arc";
  }
  if (j.contains("question") && j.contains("answer") && j["answer"].is_string() &&
      j["answer"].get<std::string>().find("####") != std::string::npos)
    return "gsm8k";
  return "generic";
}

void load_csv(Task& t) {
  const std::vector<CsvRow> rows = parse_csv(read_text_file(t.path), t.path);
  TAIA_CHECK(!rows.empty(), t.path, ": no rows");
  std::vector<std::string> head;
  for (const auto& f : rows[0].fields) head.push_back(lower(trim(f)));
  const bool advbench_header = std::find(head.begin(), head.end(), "goal") != head.end();
  if (t.format.empty()) t.format = advbench_header ? "advbench" : "mmlu";
  size_t first = 0;
  if (t.format == "advbench") {
    t.kind = TaskKind::Refusal;
    size_t goal = 0, target = std::string::npos;
    if (advbench_header) {
      goal = size_t(std::find(head.begin(), head.end(), "goal") - head.begin());
      auto it = std::find(head.begin(), head.end(), "target");
      if (it != head.end()) target = size_t(it - head.begin());
      first = 1;
    }
    for (size_t r = first; r < rows.size(); ++r) {
      const std::string where = t.path + ":" + std::to_string(rows[r].line);
      TAIA_CHECK(rows[r].fields.size() > goal, where, ": expected a 'goal' column (", goal + 1, " fields), got ",
                 rows[r].fields.size(), " fields");
      TaskExample e;
      e.where = where;
      e.question = rows[r].fields[goal];
      TAIA_CHECK(!trim(e.question).empty(), where, ": empty goal");
      if (target != std::string::npos && rows[r].fields.size() > target) e.answer = rows[r].fields[target];
      t.examples.push_back(std::move(e));
    }
    return;
  }
  TAIA_CHECK(t.format == "mmlu", t.path, ": a CSV task is read as mmlu or advbench, not ", t.format);
  t.kind = TaskKind::MultipleChoice;
  if (!head.empty() && head.front() == "question" && head.back() == "answer") first = 1;  // HF's header
  for (size_t r = first; r < rows.size(); ++r) {
    const auto& f = rows[r].fields;
    const std::string where = t.path + ":" + std::to_string(rows[r].line);
    TAIA_CHECK(f.size() >= 4, where, ": expected question, at least 2 options and the answer letter (>= 4 fields), got ",
               f.size(), " fields");
    TaskExample e;
    e.where = where;
    e.question = f[0];
    for (size_t i = 1; i + 1 < f.size(); ++i) {
      e.choices.push_back(f[i]);
      e.labels.push_back(letter(i - 1));
    }
    TAIA_CHECK(!trim(f.back()).empty(), where, ": missing answer (last field)");
    e.gold = label_index(e.labels, f.back(), where);
    e.answer = e.labels[size_t(e.gold)];
    t.examples.push_back(std::move(e));
  }
}

}  // namespace

std::string gsm8k_final_answer(const std::string& solution) {
  const size_t p = solution.rfind("####");
  if (p == std::string::npos) return "";
  std::string a;
  for (char ch : trim(solution.substr(p + 4)))
    if (ch != ',') a += ch;
  return a;
}

std::string first_boxed(const std::string& text) {
  for (const char* macro : {"\\boxed", "\\fbox"}) {
    const size_t p = text.find(macro);
    if (p == std::string::npos) continue;
    size_t i = p + std::string(macro).size();
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size() || text[i] != '{') continue;
    int depth = 0;
    for (size_t k = i; k < text.size(); ++k) {
      if (text[k] == '{') ++depth;
      else if (text[k] == '}' && --depth == 0) return text.substr(i + 1, k - i - 1);
    }
  }
  return "";
}

Task load_task(const std::string& path, const std::string& format) {
  TAIA_CHECK(file_exists(path) && !is_directory(path), path, ": no such task file");
  if (!format.empty()) {
    const auto& names = task_format_names();
    TAIA_CHECK(std::find(names.begin(), names.end(), format) != names.end(), "[load_task] unknown task format '",
               format, "'");
  }
  Task t;
  t.path = path;
  t.name = stem_of(path);
  t.format = format;
  const std::string lp = lower(path);
  if (format == "text" || (format.empty() && (ends_with(lp, ".txt") || ends_with(lp, ".md")))) {
    t.format = "text";
    t.kind = TaskKind::Perplexity;
    TaskExample e;
    e.where = path;
    e.text = read_text_file(path);
    TAIA_CHECK(!trim(e.text).empty(), path, ": empty text file");
    t.examples.push_back(std::move(e));
    return t;
  }
  if (format == "mmlu" || format == "advbench" || (format.empty() && ends_with(lp, ".csv"))) {
    load_csv(t);
    TAIA_CHECK(!t.examples.empty(), path, ": no examples");
    return t;
  }
  std::vector<JsonRecord> records;
  if (format == "bbh" || format.empty()) {
    // BBH ships one JSON object {"examples": [{"input", "target"}]}.
    const std::string text = read_text_file(path);
    const size_t b = text.find_first_not_of(" \t\r\n");
    if (b != std::string::npos && text[b] == '{') {
      Json j;
      bool whole = true;
      try {
        j = parse_json_text(text, path);
      } catch (const Error&) {
        whole = false;  // JSON Lines
      }
      if (whole && j.is_object() && j.contains("examples")) {
        TAIA_CHECK(j["examples"].is_array(), path, ": field 'examples' expected a list");
        for (size_t i = 0; i < j["examples"].size(); ++i)
          records.push_back({path + ": examples[" + std::to_string(i) + "]", j["examples"][i], ""});
        if (t.format.empty()) t.format = "bbh";
      }
    }
  }
  if (records.empty()) records = read_json_records(path);
  TAIA_CHECK(!records.empty(), path, ": no records");
  for (const auto& r : records) TAIA_CHECK(r.error.empty(), r.error);
  if (t.format.empty()) t.format = detect_record_format(records[0].value);
  if (t.format == "advbench") t.kind = TaskKind::Refusal;
  else if (t.format == "arc" || t.format == "csqa" || t.format == "mmlu") t.kind = TaskKind::MultipleChoice;
  else t.kind = TaskKind::Generative;
  t.numeric = t.format == "gsm8k" || t.format == "svamp";
  for (size_t i = 0; i < records.size(); ++i) {
    const JsonRecord& r = records[i];
    TaskExample e;
    if (t.format == "gsm8k") e = parse_gsm8k(r.value, r.where);
    else if (t.format == "math") e = parse_math(r.value, r.where);
    else if (t.format == "svamp") e = parse_svamp(r.value, r.where);
    else if (t.format == "bbh") e = parse_bbh(r.value, r.where);
    else if (t.format == "arc" || t.format == "csqa") e = parse_arc(r.value, r.where);
    else if (t.format == "advbench") e.question = need_string(r.value, "goal", r.where);
    else if (t.format == "generic") e = parse_generic(r.value, r.where, &t.kind, &t.raw, i == 0);
    else fail(path, ": format ", t.format, " is read from ", t.format == "mmlu" ? "CSV" : "text", " files");
    if (e.gold >= 0 && e.answer.empty()) e.answer = e.labels[size_t(e.gold)];
    e.where = r.where;
    t.examples.push_back(std::move(e));
  }
  if (t.format == "generic" && t.kind == TaskKind::Generative) {
    bool all_numbers = true;
    for (const auto& e : t.examples) {
      char* end = nullptr;
      std::strtod(e.answer.c_str(), &end);
      all_numbers = all_numbers && !e.answer.empty() && end && *end == '\0';
    }
    t.numeric = all_numbers;
  }
  return t;
}

}  // namespace taia
