#include "demo/finetune.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "demo/util.h"
#include "eval/drift.h"
#include "model/loader.h"
#include "model/merge.h"
#include "model/modes.h"
#include "model/adapter.h"
#include "model/update_controls.h"

#include <cmath>

namespace taia::demo {

const std::vector<std::string>& random_half_draws() {
  static const std::vector<std::string> draws = {"random-half-1", "random-half-2", "random-half-3"};
  return draws;
}

const std::vector<std::string>& demo_control_modes() {
  static const std::vector<std::string> modes = {"scaled", "random-half-1", "random-half-2", "random-half-3"};
  return modes;
}

namespace {

TrainOptions finetune_options(const RunContext& ctx, TrainMethod method, uint64_t seed,
                              const std::string& run_dir) {
  const Preset& p = *ctx.preset;
  TrainOptions t;
  t.model_path = ctx.base_path;
  t.data_path = run_dir + "/train.jsonl";
  t.out_dir = run_dir + "/train";
  t.method = method;
  t.lora.rank = p.lora_rank;
  t.lora.alpha = p.lora_alpha;
  t.lr = method == TrainMethod::Full ? p.full_lr : p.lora_lr;  // MoLoRA: LoRA's rank, alpha and learning rate
  t.max_steps = p.finetune_steps;
  t.batch_size = p.finetune_batch;
  t.grad_accum = 1;
  t.max_length = 256;
  t.seed = seed;
  t.threads = ctx.threads;
  t.progress = ctx.progress;
  t.chat_template = ctx.eval.chat_template;
  return t;
}

void add_scores(const Scores& from, Scores* to) {
  for (const auto& [task, modes] : from)
    for (const auto& [m, e] : modes) (*to)[task][m] = e;
}

// "random-half": per task the mean of the draws' scores (one value per run, as a mode's).
void add_random_half_mean(Scores* scores) {
  for (auto& [task, modes] : *scores) {
    double sum = 0;
    int64_t n = 0;
    Json first;
    for (const std::string& m : random_half_draws())
      if (modes.count(m)) {
        sum += modes.at(m)["value"].get<double>();
        if (n++ == 0) first = modes.at(m);
      }
    if (n != int64_t(random_half_draws().size())) continue;
    first["value"] = sum / double(n);
    first["draws"] = n;
    modes[kRandomHalfMode] = first;
  }
}

// The adapter applied unmerged to the base in each mode, and (`controls`; never for MoLoRA experts,
// which the controls do not define) in the update-size controls on the main tasks: scores, and the
// drift of each plain mode.
void evaluate_adapter(const RunContext& ctx, const std::string& adapter_dir, const std::string& run_dir, RunResult& r,
                      bool controls) {
  const auto adapter = load_adapter(adapter_dir, ctx.base->config);
  Decoder decoder(*ctx.base);
  r.scores = evaluate_modes(decoder, *ctx.tok, adapter.get(), finetuned_mode_names(), *ctx.tasks, ctx.eval, {},
                            run_dir + "/eval");
  if (controls && !adapter->has_experts(parse_targets("all"))) {
    add_scores(evaluate_modes(decoder, *ctx.tok, adapter.get(), demo_control_modes(), *ctx.tasks, ctx.eval, {},
                              run_dir + "/eval-controls", /*controls_only=*/true),
               &r.scores);
    add_random_half_mean(&r.scores);
    const UpdateSizes sizes = lora_update_sizes(*adapter);
    for (const std::string& m : demo_control_modes())
      r.updates[m] = describe_mode_weights(sizes, mode_weights(parse_mode_spec(m), sizes), adapter->layout);
  }
  for (const std::string& mode : finetuned_mode_names())
    r.drift[mode] = drift_json(measure_drift(*ctx.base, nullptr, adapter.get(), parse_mode(mode), ctx.drift_text));
}

// The fine-tuned model as it is (vanilla), and merged with the base: taia keeps the fine-tuned
// attention projections, taif the fine-tuned FFN; the controls weight each projection's update.
// Scores of each, drift of each plain mode.
void evaluate_full(const RunContext& ctx, const std::string& model_dir, const std::string& run_dir, RunResult& r,
                   bool controls) {
  std::vector<std::string> modes = finetuned_mode_names();
  if (controls)
    for (const std::string& m : demo_control_modes()) modes.push_back(m);
  UpdateSizes sizes;
  for (const std::string& mode : modes) {
    const ModeSpec spec = parse_mode_spec(mode);
    auto finetuned = load_model(model_dir);
    if (spec.control == UpdateControl::None) {
      merge_full(*finetuned, *ctx.base, spec.mask, RevertSet{});  // vanilla: nothing reverts
    } else {
      if (sizes.empty()) sizes = full_update_sizes(*finetuned, *ctx.base);
      const ModuleWeights w = mode_weights(spec, sizes);
      merge_full_weighted(*finetuned, *ctx.base, w);
      r.updates[mode] = describe_mode_weights(sizes, w, finetuned->config.proj_layout());
    }
    Decoder decoder(*finetuned);
    add_scores(evaluate_modes(decoder, *ctx.tok, nullptr, {kBaseMode}, *ctx.tasks, ctx.eval, {{kBaseMode, mode}},
                              run_dir + "/eval-" + mode, /*controls_only=*/spec.control != UpdateControl::None),
               &r.scores);
    if (spec.control == UpdateControl::None)
      r.drift[mode] = drift_json(measure_drift(*ctx.base, finetuned.get(), nullptr, ModuleMask{}, ctx.drift_text));
  }
  add_random_half_mean(&r.scores);
}

// The total norm of an adapter's update, sqrt(sum over modules of ||s B A||^2), and of its
// attention part.
std::pair<double, double> update_norms(const LoraAdapter& a) {
  double all = 0, attention = 0;
  for (const auto& layer : lora_update_sizes(a))
    for (int i = 0; i < kNumProj; ++i)
      if (layer[size_t(i)]) {
        all += layer[size_t(i)]->norm2;
        if (proj_is_attention(Proj(i))) attention += layer[size_t(i)]->norm2;
      }
  return {std::sqrt(all), std::sqrt(attention)};
}

// "early": of the run's checkpoints (every early_every(steps) steps, and the final adapter), the
// one whose whole update norm is nearest the final adapter's attention norm (what TAIA keeps),
// scored as vanilla on the main tasks. The checkpoints are removed afterwards.
void evaluate_early(const RunContext& ctx, const std::string& train_dir, const std::string& run_dir, RunResult& r) {
  const double target = update_norms(*load_adapter(r.training.output, ctx.base->config)).second;
  const int64_t every = early_every(r.training.steps);
  std::string best;
  double best_norm = -1;
  int64_t best_step = 0;
  std::vector<std::string> checkpoints;
  for (int64_t step = every; step <= r.training.steps; step += every) {
    std::string dir = train_dir + "/checkpoint-" + std::to_string(step);
    if (is_directory(dir))
      checkpoints.push_back(dir);
    else if (step == r.training.steps)
      dir = r.training.output;  // the final adapter is a candidate too
    else
      continue;
    const double norm = update_norms(*load_adapter(dir, ctx.base->config)).first;
    if (best.empty() || std::abs(norm - target) < std::abs(best_norm - target)) {
      best = dir;
      best_norm = norm;
      best_step = step;
    }
  }
  TAIA_CHECK(!best.empty(), "[demo] early: no checkpoint under ", train_dir, " (expected one every ", every, " steps)");
  const auto adapter = load_adapter(best, ctx.base->config);
  Decoder decoder(*ctx.base);
  add_scores(evaluate_modes(decoder, *ctx.tok, adapter.get(), {"vanilla"}, *ctx.tasks, ctx.eval, {{"vanilla", kEarlyMode}},
                            run_dir + "/eval-early", /*controls_only=*/true),
             &r.scores);
  r.updates[kEarlyMode] = Json{{"step", best_step},  {"steps", r.training.steps}, {"every", every},
                               {"norm", best_norm}, {"attention_norm", target}};
  for (const std::string& dir : checkpoints) remove_folder(dir);
}

}  // namespace

RunResult finetune_and_evaluate(const RunContext& ctx, const std::string& experiment, uint64_t seed,
                                const SplitRanks* ranks) {
  const std::string kind = experiment.substr(0, experiment.find('-'));
  const TrainMethod method = parse_method(experiment.substr(experiment.find('-') + 1), "[demo] experiment " + experiment);
  TAIA_CHECK(!ranks || method == TrainMethod::Lora, "[demo] the rank sweep trains LoRA; got ", experiment);
  const std::string run_dir =
      ctx.out_dir + "/runs/" +
      (ranks ? "sweep/" + experiment + "-a" + std::to_string(ranks->attention) + "-f" + std::to_string(ranks->ffn)
             : experiment) +
      "/seed" + std::to_string(seed);
  FinetuneSet set;
  set.kind = kind;
  set.records = ctx.preset->finetune_records;
  set.noise = ctx.noise;
  set.mix = ctx.mix;
  set.seed = seed;
  make_directories(run_dir);
  write_jsonl(run_dir + "/train.jsonl", finetune_records(*ctx.world, set));
  TrainOptions options = finetune_options(ctx, method, seed, run_dir);
  if (ranks)
    for (Proj p : {Proj::Q, Proj::K, Proj::V, Proj::O, Proj::Gate, Proj::Up, Proj::Down}) {
      const int64_t r = proj_is_attention(p) ? ranks->attention : ranks->ffn;
      options.lora.rank_pattern[proj_name(p)] = r;
      options.lora.alpha_pattern[proj_name(p)] = 2.0 * double(r);
    }
  // The update-size controls (early: LoRA runs), never in the rank sweep nor in the label control
  // country_shuffled (which only the plain modes' country scores are read of).
  const bool controls = ctx.controls && !ranks && kind != "country_shuffled";
  const bool early = controls && method == TrainMethod::Lora;
  if (early) options.save_every = early_every(options.max_steps);
  remove_folder(options.out_dir);  // a previous run's adapter and checkpoints
  RunResult r;
  r.training = run_training(options, [](const std::string&) {});
  r.train_dir = options.out_dir;
  if (method == TrainMethod::Full)
    evaluate_full(ctx, r.training.output, run_dir, r, controls);
  else
    evaluate_adapter(ctx, r.training.output, run_dir, r, controls);
  if (early) evaluate_early(ctx, options.out_dir, run_dir, r);
  return r;
}

}  // namespace taia::demo
