// `taia demo --sweep noise`: the paper's open question on noisy fine-tuning data at demo scale.
// The first LoRA experiment again for every share of wrong fine-tuning answers (--sweep-noise,
// e.g. 0, 0.1, 0.3, 0.5) and seed; per level TAIA - vanilla on the knowledge test and on the
// fine-tuning task, paired over the runs, and the first level where TAIA stops winning on the
// knowledge test (its 95 % interval no longer above 0).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "demo/finetune.h"

namespace taia::demo {

// level -> the Scores of each seed's run (the update-size controls left out), runs under
// OUT/sweep-noise/noise-LEVEL/runs/.
std::map<double, std::vector<Scores>> run_noise_sweep(const RunContext& ctx, const std::string& experiment,
                                                       const std::vector<uint64_t>& seeds,
                                                       const std::vector<double>& levels,
                                                       const std::function<void(const std::string&)>& log);

// {"experiment", "levels": [{"noise", "n", "knowledge_chat": {"taia", "vanilla", "difference":
// {mean, low, high, n, unit}}, "facts": {...}}], "taia_stops_winning_at": the first level whose
// knowledge difference is not above 0, or null}. tasks: the rows' task names (knowledge_chat,
// facts) where the runs have them. runs: per level, world-major; worlds: the intervals' clusters.
Json noise_sweep_json(const std::string& experiment, const std::map<double, std::vector<Scores>>& runs,
                      size_t worlds);

}  // namespace taia::demo
