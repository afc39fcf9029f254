#include "eval/tasks.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/json_util.h"
#include "core/mmap_file.h"
#include "core/strings.h"
#include "eval/task_records.h"
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
  static const std::vector<std::string> names{"gsm8k", "math",   "svamp",  "mmlu", "arc",      "csqa",   "medqa",
                                              "icl_mc", "icl_qa", "bbh", "text", "advbench", "generic"};
  return names;
}

namespace {

std::string stem_of(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const size_t dot = base.find('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

void load_csv(Task& t) {
  const std::vector<CsvRow> rows = parse_csv(read_text_file(t.path), t.path);
  TAIA_CHECK(!rows.empty(), t.path, ": no rows");
  std::vector<std::string> head;
  for (const auto& f : rows[0].fields) head.push_back(ascii_lower(trim_space(f)));
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
      TAIA_CHECK(!trim_space(e.question).empty(), where, ": empty goal");
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
      e.labels.push_back(option_letter(i - 1));
    }
    TAIA_CHECK(!trim_space(f.back()).empty(), where, ": missing answer (last field)");
    e.gold = label_index(e.labels, f.back(), where, "answer (last field)");
    e.answer = e.labels[size_t(e.gold)];
    t.examples.push_back(std::move(e));
  }
}

}  // namespace

std::string gsm8k_final_answer(const std::string& solution) {
  const size_t p = solution.rfind("####");
  if (p == std::string::npos) return "";
  std::string a;
  for (char ch : trim_space(solution.substr(p + 4)))
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
  const std::string lp = ascii_lower(path);
  if (format == "text" || (format.empty() && (ends_with(lp, ".txt") || ends_with(lp, ".md")))) {
    t.format = "text";
    t.kind = TaskKind::Perplexity;
    TaskExample e;
    e.where = path;
    e.text = read_text_file(path);
    TAIA_CHECK(!trim_space(e.text).empty(), path, ": empty text file");
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
  if (t.format.empty()) t.format = detect_record_layout(records[0].value, records[0].where);
  TAIA_CHECK(t.format != "mmlu" && t.format != "text", path, ": format ", t.format, " is read from ",
             t.format == "mmlu" ? "CSV" : "text", " files");
  const RecordLayoutInfo info = record_layout_info(t.format);
  t.kind = info.kind;
  t.numeric = info.numeric;
  t.raw = info.raw;
  for (size_t i = 0; i < records.size(); ++i)
    t.examples.push_back(parse_record(t.format, records[i].value, records[i].where, &t, i == 0));
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

namespace {

bool is_split_name(const std::string& s) { return s == "test" || s == "dev" || s == "val" || s == "validation" || s == "train"; }

std::string last_component(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string parent_of(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

// "abstract_algebra_test" -> "abstract_algebra".
std::string subject_of(const std::string& stem) {
  for (const char* split : {"_test", "_dev", "_val", "_validation", "_train"})
    if (ends_with(stem, split) && stem.size() > std::string(split).size())
      return stem.substr(0, stem.size() - std::string(split).size());
  return stem;
}

}  // namespace

std::vector<Task> load_tasks(const std::string& path, const std::string& format) {
  if (!is_directory(path)) return {load_task(path, format)};
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string(), low = ascii_lower(name);
    if (entry.is_regular_file() && (ends_with(low, ".csv") || ends_with(low, ".json") || ends_with(low, ".jsonl")))
      files.push_back(entry.path().string());
  }
  TAIA_CHECK(!ec, path, ": cannot list the folder: ", ec.message());
  TAIA_CHECK(!files.empty(), path, ": a task folder expected *.csv, *.json or *.jsonl files, found none");
  std::sort(files.begin(), files.end());
  const std::string folder = last_component(path);
  const std::string group = is_split_name(ascii_lower(folder)) ? last_component(parent_of(path)) : folder;
  std::vector<Task> tasks;
  for (const auto& f : files) {
    Task t = load_task(f, format);
    t.group = group;
    t.name = group + "/" + subject_of(t.name);
    tasks.push_back(std::move(t));
  }
  return tasks;
}

void use_bbh_cot_prompt(Task& task) {
  TAIA_CHECK(task.format == "bbh", task.path, ": --bbh-cot applies to BIG-Bench Hard tasks, this one is ", task.format);
  const std::string dir = parent_of(task.path), stem = stem_of(task.path);
  const std::vector<std::string> candidates = {parent_of(dir) + "/cot-prompts/" + stem + ".txt",
                                               dir + "/cot-prompts/" + stem + ".txt"};
  std::string path;
  for (const auto& c : candidates)
    if (path.empty() && file_exists(c)) path = c;
  TAIA_CHECK(!path.empty(), task.path, ": no chain-of-thought prompt for ", stem, " (looked for ", candidates[0],
             " and ", candidates[1], ")");
  std::string prompt = read_text_file(path);
  // The published files open with a canary line, then "-----".
  if (const size_t cut = prompt.find("\n-----\n"); cut != std::string::npos) prompt = prompt.substr(cut + 7);
  prompt = trim_space(prompt);
  TAIA_CHECK(prompt.find("Q: ") != std::string::npos, path, ": expected chain-of-thought demonstrations ('Q: ...')");
  for (TaskExample& e : task.examples) e.question = prompt + "\n\nQ: " + e.question + "\nA: Let's think step by step.";
  task.raw = true;
  task.reply_stop = "\n\n";
}

}  // namespace taia
