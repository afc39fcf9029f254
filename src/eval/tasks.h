// Evaluation task files: GSM8K, MATH, SVAMP, MMLU, ARC / CommonsenseQA, MedQA, BBH, AdvBench,
// lm-eval / llm-foundry ICL records, plain text (perplexity) and the generic JSONL schema of
// docs/EVAL.md, read into one shape. The format is detected from the extension and the first
// record (eval/task_records.h); `format` overrides.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace taia {

enum class TaskKind {
  MultipleChoice,  // choices + gold index: log-likelihood or generated letter
  Generative,      // free answer, extracted and compared with the gold answer
  Perplexity,      // bits per token on text
  Refusal,         // harmful prompts: does the reply refuse?
};
const char* task_kind_name(TaskKind kind);

struct TaskExample {
  std::string where;                 // "file:line" of the record
  std::string id;                    // the record's "id" field, where it has one
  std::string question;              // the prompt text (without the options)
  std::vector<std::string> choices;  // multiple choice: option texts
  std::vector<std::string> labels;   // their letters, "A", "B", ...
  int64_t gold = -1;                 // multiple choice: index into choices
  std::string answer;                // generative: the gold answer; refusal: the AdvBench target
  std::vector<std::string> aliases;  // generative: other accepted answers (llm-foundry "aliases")
  std::string solution;              // worked answer for few-shot demonstrations
  std::string answer_prefix;         // optional text the reply starts with (generic schema)
  // The record's own demonstrations (generic schema "demos": [{"question", "answer"}]), rendered
  // before its question as earlier turns; a task of such records runs with 0 drawn shots.
  std::vector<std::pair<std::string, std::string>> demos;
  std::string text;                  // perplexity: the text
};

struct Task {
  std::string name;    // file stem; GROUP/SUBJECT for a folder's files (mmlu/abstract_algebra)
  std::string group;   // the data set a folder's files belong to ("mmlu" for mmlu/test/); empty for a file
  std::string path;
  std::string format;  // gsm8k, math, svamp, mmlu, arc, csqa, medqa, icl_mc, icl_qa, bbh, advbench, text, generic
  TaskKind kind = TaskKind::Generative;
  bool numeric = false;  // generative answers compared as numbers (GSM8K, SVAMP)
  bool raw = false;      // "context" / "query" records: plain-text prompts, never a template
  std::string reply_stop;  // raw generative replies end here (empty: at the line's end)
  std::vector<TaskExample> examples;
};

// Names accepted as a format override.
const std::vector<std::string>& task_format_names();

// Reads a task file. Every problem throws "file:line: reason" (a missing answer field included).
Task load_task(const std::string& path, const std::string& format = "");
// A task file, or a folder of them (every *.csv, *.json, *.jsonl in it, by name: MMLU's test/):
// the folder's tasks share a group, named after the folder (after its parent when the folder is a
// split: mmlu/test -> "mmlu"), and are named GROUP/SUBJECT (the file stem without "_test", "_dev",
// "_val" or "_validation").
std::vector<Task> load_tasks(const std::string& path, const std::string& format = "");

// BIG-Bench Hard's 3-shot chain-of-thought evaluation: each question becomes the task's
// cot-prompts/TASK.txt (beside the task's folder or in it; its canary line dropped) + "\n\nQ: " +
// input + "\nA: Let's think step by step.", a plain-text prompt whose reply ends at a blank line.
void use_bbh_cot_prompt(Task& task);

// The answer of a GSM8K solution ("... #### 1,234" -> "1234"); empty if there is none.
std::string gsm8k_final_answer(const std::string& solution);
// The content of the first \boxed{...} (balanced braces), or of \fbox{...}; empty if none.
std::string first_boxed(const std::string& text);

}  // namespace taia
