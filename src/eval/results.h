// What `taia eval` writes and reads back: RUN_DIR/results.json, RUN_DIR/samples/KEY.MODE.jsonl,
// group averages (MMLU's subjects), and the Markdown table (see docs/EVAL.md).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace taia {

// RUN_DIR/results.json (written atomically).
void write_results(const std::string& out_dir, const Json& results);
// RUN_DIR/samples/KEY.MODE.jsonl, one JSON line per sample (written atomically).
void write_samples(const std::string& out_dir, const std::string& key, const std::string& mode,
                   const std::vector<Json>& samples);

// Per group of tasks (a folder: MMLU's subjects) and mode: the macro average (every task alike)
// and the micro average (every example alike) of the tasks' values. members: group -> task keys.
Json group_averages(const Json& task_results, const std::map<std::string, std::vector<std::string>>& members);

// The modes of a results.json in the order the run asked for them (settings.modes), then any
// others in key order.
std::vector<std::string> modes_in(const Json& results);

// Markdown table: one row per task, one column per mode, "value ± stderr"; then each group's
// macro and micro averages.
std::string results_markdown(const Json& results);

}  // namespace taia
