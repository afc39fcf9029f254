#include "demo/experiment.h"

#include "train/method.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "core/threading.h"
#include "demo/aggregate.h"
#include "demo/baselines.h"
#include "demo/noise_sweep.h"
#include "demo/finetune.h"
#include "demo/pretrain.h"
#include "demo/util.h"
#include "demo/world.h"
#include "eval/drift.h"
#include "train/method.h"
#include "generate/generate.h"
#include "eval/report.h"
#include "eval/stats.h"
#include "model/loader.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"

namespace taia::demo {
namespace {

using Log = std::function<void(const std::string&)>;
namespace fs = std::filesystem;

// The experiment a sweep repeats: the preset's first LoRA experiment.
std::string sweep_experiment(const Preset& p, const std::string& sweep = "ranks") {
  for (const auto& e : p.experiments)
    if (e.size() > 5 && e.compare(e.size() - 5, 5, "-lora") == 0) return e;
  fail("[demo] --sweep ", sweep, " repeats a LoRA experiment; --experiments has none (e.g. add facts-lora)");
}

// The preset with the options' overrides, checked.
Preset resolve_preset(const DemoOptions& o) {
  Preset p = preset_by_name(o.preset);
  if (!o.scale.empty()) apply_scale(p, o.scale);  // before the overrides: --full-lr wins over the rule
  if (!o.seeds.empty()) p.seeds = o.seeds;
  if (!o.experiments.empty()) p.experiments = o.experiments;
  if (o.finetune_steps > 0) p.finetune_steps = o.finetune_steps;
  if (o.pretrain_steps > 0) {
    TAIA_CHECK(o.model_path.empty(), "[demo] --pretrain-steps sets the pretraining; --model has no pretraining");
    p.pretrain_steps = o.pretrain_steps;
  }
  if (o.context_dialogues > 0) {
    TAIA_CHECK(o.model_path.empty(), "[demo] --context-dialogues sets the pretraining corpus; --model has no pretraining");
    p.context_dialogues = o.context_dialogues;
    p.context_people = o.context_people;
    p.context_turns = o.context_turns;
    TAIA_CHECK(p.context_turns >= 2 * p.context_people, "[demo] --context-turns expected at least 2 x --context-people (",
               2 * p.context_people, "), got ", p.context_turns);
  }
  if (o.lora_lr > 0) p.lora_lr = o.lora_lr;
  if (o.full_lr > 0) p.full_lr = o.full_lr;
  const bool own_model = !o.model_path.empty();
  if (own_model && o.experiments.empty()) p.experiments = {"facts-lora", "skill-lora"};
  for (const auto& e : p.experiments) {
    const std::string kind = e.substr(0, e.find('-')), method = e.find('-') == std::string::npos ? "" : e.substr(e.find('-') + 1);
    const auto& kinds = finetune_kinds();
    TAIA_CHECK(std::find(kinds.begin(), kinds.end(), kind) != kinds.end() &&
                   std::any_of(train_methods().begin(), train_methods().end(),
                               [&](const auto& m) { return m.first == method; }),
               "[demo] experiment expected KIND-METHOD with KIND facts, skill, country, country_new, country_mix or "
               "country_shuffled "
               "and METHOD lora, molora or full (e.g. facts-lora), got '", e, "'");
    TAIA_CHECK(!is_country_kind(kind) || !own_model, "[demo] the ", kind, " experiment needs the generated world (its "
               "pretraining text states the city -> country map); with --model use facts or skill");
  }
  TAIA_CHECK(!p.seeds.empty(), "[demo] expected at least one seed");
  TAIA_CHECK(o.sweep.empty() || o.sweep == "ranks" || o.sweep == "noise", "[demo] --sweep expected ranks or noise, got '",
             o.sweep, "'");
  TAIA_CHECK(!o.sweep_ranks.empty(), "[demo] --sweep-ranks expected at least one rank");
  TAIA_CHECK(!o.sweep_noise.empty(), "[demo] --sweep-noise expected at least one level");
  for (double v : o.sweep_noise) TAIA_CHECK(v >= 0 && v <= 1, "[demo] --sweep-noise expected levels in [0, 1], got ", v);
  if (!o.sweep.empty()) sweep_experiment(p, o.sweep);  // refused before any run, not after them
  for (int64_t r : o.sweep_ranks) TAIA_CHECK(r >= 1 && r <= 4096, "[demo] --sweep-ranks expected ranks 1..4096, got ", r);
  TAIA_CHECK(!own_model || o.mix == 0, "[demo] --mix adds questions about the generated world's pretrained people; "
             "with --model the model never read them: expected --mix 0, got ", o.mix);
  TAIA_CHECK(o.noise >= 0 && o.noise <= 1 && o.mix >= 0 && o.mix <= 1, "[demo] --noise and --mix expected in [0, 1], got ",
             o.noise, " and ", o.mix);
  return p;
}

// Held-out text of a user's model's own domain: samples from the base model itself.
std::vector<std::string> sample_own_text(const std::string& model_path, const Tokenizer& tok, int64_t samples,
                                         int64_t tokens) {
  auto model = load_model(model_path);
  Decoder d(*model);
  std::vector<std::string> texts;
  for (int64_t i = 0; i < samples; ++i) {
    GenerateOptions g;
    g.max_new_tokens = std::min<int64_t>(tokens, model->config.max_position_embeddings - 2);
    g.sampling.temperature = 1.0f;
    g.sampling.top_p = 0.95f;
    g.sampling.seed = uint64_t(1000 + i);
    std::vector<int32_t> prompt;
    if (tok.bos_id) prompt.push_back(*tok.bos_id);
    const auto r = generate(d, prompt, g);
    texts.push_back(tok.decode(r.output_ids, true));
  }
  return texts;
}

// The base model's scores (the same for every experiment and seed); on the generated world, its
// plain-text completion accuracy goes into *pretrained beside the chance levels.
Scores evaluate_base(const RunContext& ctx, bool own_model, const Log& log, Json* pretrained) {
  log("[demo] evaluating the base model");
  Decoder decoder(*ctx.base);
  Scores scores = evaluate_modes(decoder, *ctx.tok, nullptr, {kBaseMode}, *ctx.tasks, ctx.eval, {},
                                 ctx.out_dir + "/runs/base/eval");
  if (own_model) return scores;
  const Json& e = scores["knowledge_completion"][kBaseMode];
  (*pretrained)["plain_completion_acc"] = e["value"];
  (*pretrained)["plain_completion_stderr"] = e["stderr"];
  (*pretrained)["plain_completion_n"] = e["n"];
  log("[demo] the pretrained model completes \"X was born in\" / \"X works as a\" correctly for " +
      fmt(100 * e["value"].get<double>()) + " % of " + std::to_string(e["n"].get<int64_t>()) + " facts (chance: " +
      fmt(100 * (*pretrained)["chance_city"].get<double>(), 2) + " % cities, " +
      fmt(100 * (*pretrained)["chance_job"].get<double>(), 2) + " % jobs)");
  return scores;
}

// Training curves for the report: pretraining (when its metrics are cached beside the model)
// and the first seed of each experiment.
using Curves = std::vector<std::pair<std::string, std::vector<Json>>>;

std::vector<Json> read_metrics(const std::string& path) {
  std::vector<Json> records;
  for (auto& r : read_json_records(path)) records.push_back(std::move(r.value));
  return records;
}

// The retention documents (held-out pretraining text, or the user's model's own samples) as
// token ids, BOS first, cut to 256 tokens: the text each run's drift is measured on.
std::vector<std::vector<int32_t>> drift_text(const TaskSet& tasks, const Tokenizer& tok, int64_t max_positions) {
  std::vector<std::vector<int32_t>> seqs;
  for (const Task& t : tasks.main)
    if (t.name == "retention")
      for (const TaskExample& e : t.examples) {
        std::vector<int32_t> ids;
        if (tok.bos_id) ids.push_back(*tok.bos_id);
        for (int32_t id : tok.encode(e.text, false).ids) ids.push_back(id);
        ids.resize(std::min<size_t>(ids.size(), size_t(std::min<int64_t>(256, max_positions))));
        if (ids.size() >= 2) seqs.push_back(std::move(ids));
      }
  return seqs;
}

// Every (experiment, seed) run, logged with an ETA; scores by experiment, one per seed, and the
// runs' drift (mode -> per layer) by experiment.
std::map<std::string, std::vector<Scores>> run_experiments(const RunContext& ctx, const Preset& p,
                                                           std::chrono::steady_clock::time_point demo_start,
                                                           const Log& log, Curves* curves,
                                                           std::map<std::string, std::vector<Json>>* drift,
                                                           std::map<std::string, std::vector<Json>>* updates) {
  std::map<std::string, std::vector<Scores>> by_experiment;
  const int64_t total_runs = int64_t(p.experiments.size() * p.seeds.size());
  const auto t_runs = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (const auto& experiment : p.experiments)
    for (uint64_t seed : p.seeds) {
      const auto t_run = std::chrono::steady_clock::now();
      RunResult r = finetune_and_evaluate(ctx, experiment, seed);
      if (seed == p.seeds.front())
        curves->push_back({experiment + " seed " + std::to_string(seed), read_metrics(r.train_dir + "/metrics.jsonl")});
      by_experiment[experiment].push_back(std::move(r.scores));
      (*drift)[experiment].push_back(std::move(r.drift));
      (*updates)[experiment].push_back(std::move(r.updates));
      ++done;
      const double runs_time = seconds_since(t_runs);
      log("[demo] " + std::to_string(done) + "/" + std::to_string(total_runs) + " " + experiment + " seed " +
          std::to_string(seed) + ": final loss " + fmt(r.training.final_loss, 3) + ", " + fmt(seconds_since(t_run)) +
          " s (elapsed " + format_duration(seconds_since(demo_start)) + ", about " +
          format_duration(runs_time / double(done) * double(total_runs - done)) + " left)");
    }
  return by_experiment;
}

Json demo_settings(const DemoOptions& o, const Preset& p, const std::string& base_path, const std::string& chat) {
  return Json{{"preset", p.name},
              {"scale", o.scale.empty() ? Json(nullptr) : Json(o.scale)},
              {"world_seed", o.world_seed},
              {"seeds", p.seeds},
              {"experiments", p.experiments},
              {"modes", demo_modes()},
              {"noise", o.noise},
              {"mix", o.mix},
              {"finetune_steps", p.finetune_steps},
              {"pretrain_steps", p.pretrain_steps},
              {"context_dialogues", p.context_dialogues},
              {"finetune_batch", p.finetune_batch},
              {"finetune_records", p.finetune_records},
              {"lora", Json{{"rank", p.lora_rank}, {"alpha", p.lora_alpha}, {"lr", p.lora_lr}, {"targets", "all"}}},
              {"full_lr", p.full_lr},
              {"threads", num_threads()},
              {"model", base_path},
              {"chat_template", chat},
              {"note", "value = mean over seeds, ± = sample standard deviation over seeds (not a standard error)"},
              {"report_title", "taia demo: base / vanilla / TAIA / TAIF after out-of-distribution fine-tuning"},
              {"spread", "standard deviation over seeds"}};
}

// The drift of each experiment and mode, averaged over seeds per layer (each run's drift is
// eval/drift's drift_json per mode).
std::map<std::string, std::map<std::string, MeanDrift>> mean_drift(const std::map<std::string, std::vector<Json>>& drift) {
  std::map<std::string, std::map<std::string, MeanDrift>> out;
  for (const auto& entry : drift) {
    const std::vector<Json>& runs = entry.second;  // named, not bound: lambdas capture it below
    if (runs.empty() || !runs.front().is_object()) continue;
    for (const auto& item : runs.front().items()) {
      const std::string mode = item.key();
      const size_t layers = item.value()["layers"].size();
      auto mean_over_runs = [&](const char* part, const char* stat) {
        std::vector<double> per_layer;
        for (size_t l = 0; l < layers; ++l) {
          double sum = 0;
          for (const Json& run : runs) sum += run[mode]["layers"][l][part][stat].get<double>();
          per_layer.push_back(sum / double(runs.size()));
        }
        return per_layer;
      };
      out[entry.first][mode] = MeanDrift{mean_over_runs("attention", "relative_change"), mean_over_runs("ffn", "relative_change"),
                                         mean_over_runs("attention", "mean_cosine"), mean_over_runs("ffn", "mean_cosine")};
    }
  }
  return out;
}

// One log line per noise level: TAIA - vanilla on the knowledge test, then where TAIA stops winning.
void log_noise_sweep(const Json& sweep, const Log& log) {
  for (const Json& l : sweep["levels"]) {
    const Json& k = l["knowledge_chat"];
    if (k.is_null()) continue;
    const Json& d = k["difference"];
    log("[demo] noise " + fmt(l["noise"].get<double>(), 2) + ": knowledge TAIA " + fmt(100 * k["taia"].get<double>()) +
        " vs vanilla " + fmt(100 * k["vanilla"].get<double>()) + " %, difference " + fmt(100 * d["mean"].get<double>()) +
        " [" + fmt(100 * d["low"].get<double>()) + ", " + fmt(100 * d["high"].get<double>()) + "]");
  }
  const Json& stop = sweep["taia_stops_winning_at"];
  log(stop.is_null() ? "[demo] TAIA keeps more knowledge than vanilla at every noise level"
                     : "[demo] TAIA stops winning on knowledge at noise " + fmt(stop.get<double>(), 2));
}

// The claims with the run's family corrected (eval/aggregate_results: Holm, Bonferroni): the family
// is every claim about TAIA; P1 (a precondition) stays out, and while any world's P1 fails the ICL
// claims (I1) are "not judged" and out of it too.
std::vector<Claim> corrected_family(std::vector<Claim> claims) {
  const bool icl_ok = std::all_of(claims.begin(), claims.end(), [](const Claim& c) {
    return c.claim.rfind("P1:", 0) != 0 || c.verdict == "reproduced";
  });
  std::vector<Claim> family, outside;
  for (Claim& c : claims) {
    const bool precondition = c.claim.rfind("P1:", 0) == 0, icl = c.claim.rfind("I1:", 0) == 0;
    if (icl && !icl_ok) c.verdict = "not judged (P1 failed)";
    (precondition || (icl && !icl_ok) ? outside : family).push_back(std::move(c));
  }
  correct_for_multiplicity(family);
  family.insert(family.end(), outside.begin(), outside.end());
  return family;
}

// results.json (report format), summary.json, table.md, paired.md and report.html in out_dir.
// extra: the drift and, with --sweep, the sweep.
DemoSummary write_outputs(const std::string& out, const Aggregate& agg, const Json& settings, const Json& pretrained,
                          const Curves& curves, AggregateResults extra, const std::vector<Claim>& more_claims,
                          const Json& updates, const Json& noise_sweep, double seconds) {
  for (const AggregateRow& row : agg.rows)
    if (!row.paired.empty()) extra.paired[row.key()] = row.paired;
  extra.claims = judge_claims(agg.rows);
  extra.claims.insert(extra.claims.end(), more_claims.begin(), more_claims.end());
  extra.claims = corrected_family(std::move(extra.claims));
  Json results{{"tasks", agg.results}, {"settings", settings}, {"control_updates", updates}};
  if (!noise_sweep.is_null()) results["noise_sweep"] = noise_sweep;
  extra.add_to(results);
  const DemoSummary summary{agg.rows, extra.claims, pretrained, settings, out, seconds};
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  write_file_atomic(out + "/summary.json", summary.to_json().dump(2) + "\n");
  write_file_atomic(out + "/table.md", demo_table_markdown(summary.rows));
  write_file_atomic(out + "/paired.md", paired_table_markdown(summary.rows));
  write_file_atomic(out + "/report.html", render_report_html(results, curves));
  return summary;
}

}  // namespace

namespace {

// What one world gives: its runs' scores (the world's base model's scores merged into each run
// under "base") and drift by experiment, its pretrained model's facts, the names the outputs need.
struct WorldRuns {
  std::map<std::string, std::vector<Scores>> runs;
  std::map<std::pair<int64_t, int64_t>, std::vector<Scores>> sweep;  // (attention, FFN rank) -> per seed
  std::map<double, std::vector<Scores>> noise_sweep;                   // noise level -> per seed
  std::map<std::string, std::vector<Json>> drift;
  std::map<std::string, std::vector<Json>> updates;  // experiment -> per seed: what each control kept
  Json pretrained;
  std::string base_path, chat_template_name;
  TaskSet tasks;
  std::optional<SkillBaselines> skill;       // when a country experiment runs
  std::optional<PairedDifference> icl_base;  // when the ICL test runs
};

std::map<std::pair<int64_t, int64_t>, std::vector<Scores>> run_rank_sweep(const RunContext& ctx, const DemoOptions& o,
                                                                           const Preset& p, const Log& log);

// One world: the base model (pretrained and cached, or the user's), the task files, the base's
// scores, then every fine-tuning run of the preset. out_dir: data/ and runs/ go under it.
WorldRuns run_world(const DemoOptions& o, const Preset& p, uint64_t world_seed, const std::string& out_dir,
                    std::chrono::steady_clock::time_point t0, const Log& log, Curves* curves) {
  const bool own_model = !o.model_path.empty();
  make_directories(out_dir + "/data");
  WorldRuns w;
  const World world = make_world(world_seed, p.world);
  w.pretrained = Json{{"world_seed", world_seed}, {"chance_city", 1.0 / double(world.cities.size())},
                      {"chance_job", 1.0 / double(world.jobs.size())}};
  const PretrainSettings ps{o.cache_dir.empty() ? default_cache_dir() : o.cache_dir, world_seed, o.threads, o.progress};
  w.base_path = own_model ? o.model_path : ensure_pretrained(p, world, ps, log, &w.pretrained);
  w.pretrained["model"] = w.base_path;
  auto tok = load_tokenizer(w.base_path);
  const bool has_template = chat_template_for(*tok).format != ChatFormat::Raw;
  const std::string chat_template = has_template ? "" : "alpaca";  // a template every tokenizer can spell
  w.chat_template_name = has_template ? chat_template_for(*tok).name : chat_template;
  std::vector<std::string> own_text;
  if (own_model) {
    log("[demo] retention text: 8 samples of the base model's own text");
    own_text = sample_own_text(w.base_path, *tok, 8, 128);
  }
  w.tasks = write_tasks(world, p, world_seed, out_dir + "/data/", own_model ? &own_text : nullptr);
  auto base = load_model(w.base_path);
  const RunContext ctx{&world, &p, o.noise, o.mix, w.base_path, base.get(), tok.get(), &w.tasks,
                       EvalRun{&p, chat_template, o.progress}, out_dir, o.threads, o.progress,
                       drift_text(w.tasks, *tok, base->config.max_position_embeddings)};
  const Scores base_scores = evaluate_base(ctx, own_model, log, &w.pretrained);
  if (!w.tasks.icl.empty()) {
    w.icl_base = base_icl_slope(out_dir + "/runs/base/eval-icl", w.tasks.icl_shots);
    w.pretrained["icl_base_slope"] = w.icl_base->to_json();
  }
  if (std::any_of(p.experiments.begin(), p.experiments.end(), [](const std::string& e) { return e.rfind("country-", 0) == 0; })) {
    FinetuneSet set;  // the country set's answers (their counts are the same for every seed)
    set.kind = "country";
    set.records = p.finetune_records;
    set.noise = o.noise;
    set.mix = o.mix;
    set.seed = p.seeds.front();
    w.skill = skill_baselines(world, finetune_records(world, set));
    w.pretrained["skill_baselines"] = w.skill->to_json();
  }
  const std::string pretrain_metrics = fs::path(w.base_path).parent_path().string() + "/pretrain-metrics.jsonl";
  if (!own_model && file_exists(pretrain_metrics) && curves->empty())
    curves->push_back({"pretraining", read_metrics(pretrain_metrics)});
  w.runs = run_experiments(ctx, p, t0, log, curves, &w.drift, &w.updates);
  if (o.sweep == "ranks") w.sweep = run_rank_sweep(ctx, o, p, log);
  if (o.sweep == "noise") w.noise_sweep = run_noise_sweep(ctx, sweep_experiment(p, "noise"), p.seeds, o.sweep_noise, log);
  // Each run carries its world's base scores, so that aggregation and paired differences pair a
  // run with the base it started from.
  auto add_base = [&](std::vector<Scores>& seeds) {
    for (Scores& s : seeds)
      for (const auto& [task, modes] : base_scores) s[task][kBaseMode] = modes.at(kBaseMode);
  };
  for (auto& [experiment, seeds] : w.runs) add_base(seeds);
  for (auto& [ranks, seeds] : w.sweep) add_base(seeds);
  for (auto& [level, seeds] : w.noise_sweep) add_base(seeds);
  return w;
}

// Every (attention rank, FFN rank) pair of the sweep, every seed.
std::map<std::pair<int64_t, int64_t>, std::vector<Scores>> run_rank_sweep(const RunContext& ctx, const DemoOptions& o,
                                                                           const Preset& p, const Log& log) {
  const std::string experiment = sweep_experiment(p);
  std::map<std::pair<int64_t, int64_t>, std::vector<Scores>> out;
  for (int64_t ra : o.sweep_ranks)
    for (int64_t rf : o.sweep_ranks)
      for (uint64_t seed : p.seeds) {
        const SplitRanks ranks{ra, rf};
        RunResult r = finetune_and_evaluate(ctx, experiment, seed, &ranks);
        log("[demo] sweep " + experiment + " attention rank " + std::to_string(ra) + ", FFN rank " +
            std::to_string(rf) + ", seed " + std::to_string(seed) + ": final loss " + fmt(r.training.final_loss, 3));
        out[{ra, rf}].push_back(std::move(r.scores));
      }
  return out;
}

// The sweep: per 0-shot task and mode, the mean over runs as a matrix [attention rank][FFN rank].
RankSweep sweep_means(const std::string& experiment, const std::vector<int64_t>& ranks,
                      const std::map<std::pair<int64_t, int64_t>, std::vector<Scores>>& sweep, const TaskSet& tasks) {
  RankSweep out{experiment, ranks, {}};
  for (const Task& t : tasks.main)
    for (const auto& mode : demo_modes()) {
      RankSweep::Matrix matrix;
      bool any = false;
      for (int64_t ra : ranks) {
        matrix.emplace_back();
        for (int64_t rf : ranks) {
          std::vector<double> v;
          auto it = sweep.find({ra, rf});
          if (it != sweep.end())
            for (const Scores& s : it->second)
              if (s.count(t.name) && s.at(t.name).count(mode)) v.push_back(s.at(t.name).at(mode)["value"].get<double>());
          matrix.back().push_back(v.empty() ? std::nullopt : std::optional<double>(mean_of(v)));
          any = any || !v.empty();
        }
      }
      if (any) out.tasks[t.name][mode] = matrix;
    }
  return out;
}

// The (world, seed) of each run in the order of every per-run list of the results (world-major).
Json run_order(const std::vector<uint64_t>& worlds, const std::vector<uint64_t>& seeds) {
  Json order = Json::array();
  for (uint64_t w : worlds)
    for (uint64_t s : seeds) order.push_back(Json{{"world", w}, {"seed", s}});
  return order;
}

// The worlds of a run: --world-seeds, else the preset's, else the one of --world-seed.
std::vector<uint64_t> world_seeds(const DemoOptions& o, const Preset& p) {
  const std::vector<uint64_t> w = !o.world_seeds.empty() ? o.world_seeds
                                  : !p.worlds.empty()     ? p.worlds
                                                          : std::vector<uint64_t>{o.world_seed};
  TAIA_CHECK(o.model_path.empty() || w.size() == 1, "[demo] --model runs on the user's model, one base: expected one "
             "world, got ", w.size());
  return w;
}

}  // namespace

DemoSummary run_demo(const DemoOptions& o, const Log& log) {
  const auto t0 = std::chrono::steady_clock::now();
  const Preset p = resolve_preset(o);
  if (o.threads > 0) set_num_threads(o.threads);
  make_directories(o.out_dir);
  // 1-3. Each world: its base model, task files, base scores and fine-tuning runs. One world
  // writes into OUT/data and OUT/runs as it always did; several into OUT/world-S/.
  const std::vector<uint64_t> worlds = world_seeds(o, p);
  Curves curves;
  std::map<std::string, std::vector<Scores>> runs;
  std::map<std::string, std::vector<Json>> drift;
  std::map<std::pair<int64_t, int64_t>, std::vector<Scores>> sweep;
  std::map<double, std::vector<Scores>> noise_sweep;
  Json pretrained, per_world = Json::array(), updates = Json::object();
  std::vector<double> majority_per_run;  // each country-lora run's world's majority level
  std::vector<std::pair<uint64_t, PairedDifference>> icl_per_world;
  WorldRuns first;
  for (size_t i = 0; i < worlds.size(); ++i) {
    if (worlds.size() > 1) log("[demo] world " + std::to_string(worlds[i]) + " (" + std::to_string(i + 1) + "/" +
                               std::to_string(worlds.size()) + ")");
    WorldRuns w = run_world(o, p, worlds[i],
                            worlds.size() > 1 ? o.out_dir + "/world-" + std::to_string(worlds[i]) : o.out_dir, t0,
                            log, &curves);
    for (auto& [experiment, seeds] : w.runs)
      for (Scores& s : seeds) runs[experiment].push_back(std::move(s));
    for (auto& [experiment, seeds] : w.drift)
      for (Json& d : seeds) drift[experiment].push_back(std::move(d));
    for (auto& [experiment, seeds] : w.updates)
      for (Json& u : seeds) updates[experiment].push_back(std::move(u));
    if (w.skill && w.runs.count("country-lora"))
      for (size_t k = 0; k < w.runs.at("country-lora").size(); ++k) majority_per_run.push_back(w.skill->majority_acc);
    if (w.icl_base) icl_per_world.push_back({worlds[i], *w.icl_base});
    for (auto& [ranks, seeds] : w.sweep)
      for (Scores& s : seeds) sweep[ranks].push_back(std::move(s));
    for (auto& [level, seeds] : w.noise_sweep)
      for (Scores& s : seeds) noise_sweep[level].push_back(std::move(s));
    per_world.push_back(w.pretrained);
    if (i == 0) first = std::move(w);
  }
  pretrained = first.pretrained;
  if (worlds.size() > 1) pretrained["worlds"] = per_world;

  // 4. Mean and spread over the runs (seeds, and worlds); paired differences; the outputs.
  const Aggregate agg = aggregate_over_seeds(p.experiments, runs, first.tasks, worlds.size());
  Json settings = demo_settings(o, p, first.base_path, first.chat_template_name);
  settings["world_seeds"] = worlds;
  settings["run_order"] = run_order(worlds, p.seeds);
  settings["interval_unit"] = worlds.size() > 1 ? "world" : "run";
  if (worlds.size() > 1) {
    settings["spread"] = "standard deviation over worlds x seeds";
    settings["note"] = "value = mean over worlds x seeds, ± = sample standard deviation over the " +
                       std::to_string(worlds.size() * p.seeds.size()) + " runs (not a standard error); paired "
                       "intervals over the " + std::to_string(worlds.size()) + " per-world means (df " +
                       std::to_string(worlds.size() - 1) + ")";
  }
  AggregateResults extra;
  extra.drift = mean_drift(drift);
  if (o.sweep == "ranks") {
    settings["sweep"] = Json{{"kind", "ranks"}, {"ranks", o.sweep_ranks}, {"experiment", sweep_experiment(p)}};
    extra.sweep = sweep_means(sweep_experiment(p), o.sweep_ranks, sweep, first.tasks);
  }
  Json noise = nullptr;
  if (o.sweep == "noise") {
    settings["sweep"] = Json{{"kind", "noise"}, {"levels", o.sweep_noise}, {"experiment", sweep_experiment(p, "noise")}};
    noise = noise_sweep_json(sweep_experiment(p, "noise"), noise_sweep, worlds.size());
    log_noise_sweep(noise, log);
  }
  return write_outputs(o.out_dir, agg, settings, pretrained, curves, extra,
                       baseline_claims(agg.rows, majority_per_run, icl_per_world, worlds.size()), updates, noise, seconds_since(t0));
}

std::string demo_table_markdown(const std::vector<AggregateRow>& rows) {
  std::string s = "| experiment | task | metric | n |";
  std::string sep = "|---|---|---|---|";
  for (const auto& m : demo_modes()) {
    s += " " + m + " |";
    sep += "---|";
  }
  s += "\n" + sep + "\n";
  for (const AggregateRow& row : rows) {
    s += "| " + row.experiment + " | " + row.task + " | " + row.metric + " | " + std::to_string(row.n) + " |";
    const bool scale = row.metric != "bits_per_token";
    const double k = scale ? 100.0 : 1.0;
    const int digits = scale ? 1 : 3;
    for (const auto& m : demo_modes()) {
      auto it = row.modes.find(m);
      s += it == row.modes.end() ? std::string(" |")
                                 : " " + fmt(k * it->second.mean, digits) + " ± " + fmt(k * it->second.std, digits) + " |";
    }
    s += "\n";
  }
  return s;
}

Json DemoSummary::to_json() const {
  Json j{{"rows", Json::array()}, {"claims", Json::array()}, {"pretrained", pretrained},
         {"settings", settings},  {"out", out},                {"seconds", seconds}};
  for (const AggregateRow& r : rows) j["rows"].push_back(r.to_json());
  for (const Claim& c : claims) j["claims"].push_back(c.to_json());
  return j;
}

DemoSummary DemoSummary::from_json(const Json& j, const std::string& where) {
  TAIA_CHECK(j.is_object(), where, ": expected a summary object");
  DemoSummary s;
  for (const char* key : {"rows", "claims", "pretrained", "settings", "out", "seconds"})
    TAIA_CHECK(j.contains(key), where, ": expected a field '", key, "'");
  TAIA_CHECK(j["rows"].is_array() && j["claims"].is_array(), where, ": rows and claims expected arrays");
  for (size_t i = 0; i < j["rows"].size(); ++i)
    s.rows.push_back(AggregateRow::from_json(j["rows"][i], where + ": rows[" + std::to_string(i) + "]"));
  for (size_t i = 0; i < j["claims"].size(); ++i)
    s.claims.push_back(Claim::from_json(j["claims"][i], where + ": claims[" + std::to_string(i) + "]"));
  s.pretrained = j["pretrained"];
  s.settings = j["settings"];
  TAIA_CHECK(j["out"].is_string() && j["seconds"].is_number(), where, ": out expected a string, seconds a number");
  s.out = j["out"].get<std::string>();
  s.seconds = j["seconds"].get<double>();
  return s;
}

}  // namespace taia::demo
