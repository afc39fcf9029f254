#include "demo/noise_sweep.h"

#include "demo/aggregate.h"
#include "demo/util.h"
#include "eval/stats.h"

namespace taia::demo {
namespace {

// TAIA and vanilla on `task` over the runs, and their run-by-run difference; null when a run
// lacks either.
Json paired_on(const std::vector<Scores>& runs, const std::string& task, size_t worlds) {
  std::vector<double> taia, vanilla, diff;
  for (const Scores& s : runs) {
    auto it = s.find(task);
    if (it == s.end() || !it->second.count("taia") || !it->second.count("vanilla")) return nullptr;
    taia.push_back(it->second.at("taia")["value"].get<double>());
    vanilla.push_back(it->second.at("vanilla")["value"].get<double>());
    diff.push_back(taia.back() - vanilla.back());
  }
  return Json{{"taia", mean_of(taia)}, {"vanilla", mean_of(vanilla)}, {"difference", paired_interval(diff, worlds).to_json()}};
}

}  // namespace

std::map<double, std::vector<Scores>> run_noise_sweep(const RunContext& ctx, const std::string& experiment,
                                                       const std::vector<uint64_t>& seeds,
                                                       const std::vector<double>& levels,
                                                       const std::function<void(const std::string&)>& log) {
  std::map<double, std::vector<Scores>> out;
  for (double level : levels)
    for (uint64_t seed : seeds) {
      RunContext c = ctx;
      c.noise = level;
      c.controls = false;
      c.out_dir = ctx.out_dir + "/sweep-noise/noise-" + fmt(level, 2);
      RunResult r = finetune_and_evaluate(c, experiment, seed);
      log("[demo] noise sweep " + experiment + " noise " + fmt(level, 2) + ", seed " + std::to_string(seed) +
          ": final loss " + fmt(r.training.final_loss, 3));
      out[level].push_back(std::move(r.scores));
    }
  return out;
}

Json noise_sweep_json(const std::string& experiment, const std::map<double, std::vector<Scores>>& runs,
                      size_t worlds) {
  Json levels = Json::array(), stops = nullptr;
  for (const auto& [level, seeds] : runs) {
    Json l{{"noise", level}, {"n", int64_t(seeds.size())}};
    for (const char* task : {"knowledge_chat", "facts"}) l[task] = paired_on(seeds, task, worlds);
    const Json& k = l["knowledge_chat"];
    if (stops.is_null() && !k.is_null()) {
      const auto d = PairedDifference::from_json(k["difference"], "[demo] noise sweep");
      if (!(d.excludes_zero() && d.low > 0)) stops = level;  // TAIA's win is not shown at this level
    }
    levels.push_back(l);
  }
  return Json{{"experiment", experiment}, {"levels", levels}, {"taia_stops_winning_at", stops}};
}

}  // namespace taia::demo
