// `taia eval --predictions`: scores completions produced by another engine (vLLM, llama.cpp, an
// API), one JSON line each {"index": I, "completion": TEXT} (I the 0-based position of the example
// in the task file) or {"id": ID, "completion": TEXT} where the task file's records have ids,
// with the extraction and metric `taia eval` applies to generated answers (eval/grading.h; the
// second pass needs a model and is not run). Multiple-choice completions are read as a letter
// answer ("The answer is (B)."), refusal tasks through the refusal phrases. Writes the same
// RUN_DIR/results.json (mode "predictions") and samples/TASK.predictions.jsonl.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/tasks.h"

namespace taia {

inline constexpr const char* kPredictionsMode = "predictions";

// One completion per example: every example of the task (its first `limit`, when limit > 0) must
// have exactly one; a duplicate, an unknown index or id, or a missing example stops with the
// predictions file's line.
std::vector<std::string> read_predictions(const std::string& path, const Task& task, int64_t limit);

Json score_predictions(const Task& task, const std::string& predictions_path, int64_t limit,
                       const std::vector<std::string>& refusal_phrases, const std::string& out_dir, Json settings);

}  // namespace taia
