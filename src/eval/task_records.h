// The JSON record layouts of evaluation tasks (docs/EVAL.md "Task files"): the published forms
// of GSM8K, MATH, SVAMP, BBH, AdvBench, ARC / CommonsenseQA (nested, HF and flattened), MedQA,
// lm-eval / llm-foundry ICL records, and taia's generic schema. A file's layout is recognised from
// its first record's fields; a record in none of them, or one whose task-shaping field
// (`options`, `choices`, `answer_idx`, `gold`, ...) the recognised layout would leave unread, is
// refused with the layouts taia knows and the fields it found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/tasks.h"

namespace taia {

// What a layout makes of a file.
struct RecordLayoutInfo {
  std::string format;  // gsm8k, math, svamp, bbh, advbench, arc, csqa, medqa, icl_mc, icl_qa, generic
  TaskKind kind = TaskKind::Generative;
  bool numeric = false;  // answers compared as numbers
  bool raw = false;      // plain-text prompts (ICL "context" / "query" records), never a template
};

// The layout of a file from its first record (`where` names it in the refusal).
std::string detect_record_layout(const Json& first, const std::string& where);
RecordLayoutInfo record_layout_info(const std::string& format);
const std::vector<std::string>& record_layout_names();

// Reads one record in `format`. Generic records carry their own kind: the first one sets
// task->kind and task->raw, the others must agree.
TaskExample parse_record(const std::string& format, const Json& j, const std::string& where, Task* task, bool first);

// Shared with the CSV readers.
std::string trim_space(const std::string& s);
std::string option_letter(size_t i);  // 0 -> "A"
// The index of `key` among `labels`, else "where: field 'FIELD' ..." naming the labels.
int64_t label_index(const std::vector<std::string>& labels, const std::string& key, const std::string& where,
                    const std::string& field);

}  // namespace taia
