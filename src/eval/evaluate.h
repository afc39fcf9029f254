// `taia eval`: every task in every mode (base / vanilla / taia / taif / module lists) on one
// loaded model, switching the adapter's modules unmerged between modes. Writes
// RUN_DIR/results.json and RUN_DIR/samples/TASK.MODE.jsonl (see docs/EVAL.md). The steps live
// by concept: eval/prompts (prompts, few-shot pools), eval/scorers (one scorer per task kind),
// eval/results (results.json, samples, Markdown).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "eval/results.h"
#include "eval/settings.h"
#include "eval/tasks.h"
#include "model/decoder.h"
#include "model/lora.h"
#include "tokenizer/chat_template.h"

namespace taia {

// The log lines (timings, examples/s) go to `log`.
Json run_eval(Decoder& decoder, const Tokenizer& tok, const LoraAdapter* adapter, const std::vector<Task>& tasks,
              const EvalSettings& settings, const std::string& out_dir, Json settings_json,
              const std::function<void(const std::string&)>& log);

}  // namespace taia
