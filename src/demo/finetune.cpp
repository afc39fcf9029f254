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

namespace taia::demo {
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

// The adapter applied unmerged to the base in each mode: scores, and the drift of each mode.
void evaluate_adapter(const RunContext& ctx, const std::string& adapter_dir, const std::string& run_dir, RunResult& r) {
  const auto adapter = load_adapter(adapter_dir, ctx.base->config);
  Decoder decoder(*ctx.base);
  r.scores = evaluate_modes(decoder, *ctx.tok, adapter.get(), finetuned_mode_names(), *ctx.tasks, ctx.eval, {},
                            run_dir + "/eval");
  for (const std::string& mode : finetuned_mode_names())
    r.drift[mode] = drift_json(measure_drift(*ctx.base, nullptr, adapter.get(), parse_mode(mode), ctx.drift_text));
}

// The fine-tuned model as it is (vanilla), and merged with the base: taia keeps the fine-tuned
// attention projections, taif the fine-tuned FFN. Scores and drift of each.
void evaluate_full(const RunContext& ctx, const std::string& model_dir, const std::string& run_dir, RunResult& r) {
  for (const std::string& mode : finetuned_mode_names()) {
    auto finetuned = load_model(model_dir);
    merge_full(*finetuned, *ctx.base, parse_mode(mode), RevertSet{});  // vanilla: nothing reverts
    Decoder decoder(*finetuned);
    const Scores one = evaluate_modes(decoder, *ctx.tok, nullptr, {kBaseMode}, *ctx.tasks, ctx.eval, {{kBaseMode, mode}},
                                      run_dir + "/eval-" + mode);
    for (const auto& [task, modes] : one)
      for (const auto& [m, e] : modes) r.scores[task][m] = e;
    r.drift[mode] = drift_json(measure_drift(*ctx.base, finetuned.get(), nullptr, ModuleMask{}, ctx.drift_text));
  }
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
  remove_folder(options.out_dir);  // a previous run's adapter and checkpoints
  RunResult r;
  r.training = run_training(options, [](const std::string&) {});
  r.train_dir = options.out_dir;
  if (method == TrainMethod::Full)
    evaluate_full(ctx, r.training.output, run_dir, r);
  else
    evaluate_adapter(ctx, r.training.output, run_dir, r);
  return r;
}

}  // namespace taia::demo
