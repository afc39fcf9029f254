// `taia report`: one self-contained HTML file (inline SVG, no scripts, no network) with the
// mode x task table, a bar chart per task, few-shot curves when several shot counts were run,
// training / validation loss curves from metrics.jsonl files, and the run's settings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace taia {

struct ReportSummary {
  int64_t tasks = 0, modes = 0, training_runs = 0, bytes = 0;
};

// Reads RUN_DIR/results.json and each TRAIN_DIR/metrics.jsonl; writes `out` atomically.
ReportSummary write_report(const std::string& run_dir, const std::vector<std::string>& train_dirs,
                           const std::string& out);

// The page for already-loaded inputs (train runs: name + metrics records).
std::string render_report_html(const Json& results, const std::vector<std::pair<std::string, std::vector<Json>>>& runs);

}  // namespace taia
