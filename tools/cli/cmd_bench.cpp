// taia bench prefill|decode|train: what this machine does with a model (a file or a preset
// shape with random weights), beside the ceiling it measures in the same run: read bandwidth for
// decode, GEMM GFLOP/s for prefill and training.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/threading.h"
#include "model/init.h"
#include "perf/machine.h"
#include "perf/measure.h"
#include "perf/presets.h"

namespace taia::cli {
namespace {

enum class BenchKind { Prefill, Decode, Train };

struct BenchArgs {
  BenchKind kind = BenchKind::Decode;
  std::string model, preset;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  DecoderSettings run{Precision::F32, false, DType::F16};  // prefill / decode: --compute, --exact-activations, --kv-dtype
  int threads = 0, rounds = 3;
  bool no_mmap = false, profile = false;
  int64_t prompt = 512, depth = 0, tokens = 128;
  TrainBenchOptions train;
  OutputFormat format = OutputFormat::Text;
};

const char* kind_name(BenchKind k) {
  return k == BenchKind::Prefill ? "prefill" : k == BenchKind::Decode ? "decode" : "train";
}

// The model file as loaded (--dtype converts), or the preset's shape with random weights
// (F32 unless --dtype names BF16 or F16).
std::unique_ptr<Model> bench_model(const BenchArgs& a, std::string* label) {
  if (!a.model.empty()) {
    *label = a.model;
    return load_for_run(a.model, a.dtype, a.threads, a.no_mmap);
  }
  set_num_threads(a.threads);
  const std::optional<DType> dt = a.dtype;
  *label = a.preset + " (preset, random weights)";
  return init_model(bench_preset_config(a.preset), 1, dt.value_or(DType::F32));
}

struct BenchResult {
  std::vector<double> rates;  // tokens/s per round
  double work = 0;            // per token: bytes (decode) or FLOPs (prefill, train)
  double ceiling = 0;         // GB/s (decode) or GFLOP/s
  DecodeProfile profile;      // decode --profile: the timed steps' time and bytes by step
  TrainProfile train_profile;  // train --profile: the timed steps' time by phase
};

BenchResult run_kind(const BenchArgs& a, Model& m) {
  BenchResult r;
  const int rounds = a.rounds;
  ProgressBar bar(std::string("bench ") + kind_name(a.kind), rounds, true);
  const RoundDone done = [&](int d, int) { bar.update(d); };
  if (a.kind == BenchKind::Prefill) {
    r.rates = measure_prefill(m, a.prompt, rounds, done, a.run);
    r.work = prefill_flops(m.config, a.prompt) / double(a.prompt);
    r.ceiling = gemm_peak_gflops(a.run.precision);  // the GEMM the products run on
  } else if (a.kind == BenchKind::Decode) {
    r.rates = measure_decode(m, a.depth, a.tokens, rounds, done, a.run, a.profile ? &r.profile : nullptr);
    r.work = decode_bytes_per_token(m, a.depth + a.tokens / 2, a.run.kv_dtype);
    bar.finish();
    r.ceiling = read_bandwidth_gbs(size_t(r.work));  // over as many bytes as a step reads
  } else {
    TrainBenchOptions o = a.train;
    o.compute_bf16 = a.run.precision == Precision::BF16;
    r.rates = measure_train(m, o, rounds, done, a.profile ? &r.train_profile : nullptr);
    r.work = train_step_flops(m.config, o) / double(o.batch * o.seq);
    r.ceiling = gemm_peak_gflops(o.compute_bf16 ? Precision::BF16 : Precision::F32);
  }
  return r;
}

// --profile: per step, ms per token, share of the measured steps' time, and GB/s over the bytes it
// reads (weights, KV rows) beside the machine's read bandwidth.
Json profile_json(const DecodeProfile& p, int64_t tokens) {
  Json steps = Json::array();
  double total = 0.0;
  for (double s : p.seconds) total += s;
  for (int i = 0; i < kDecodeSteps; ++i) {
    const double sec = p.seconds[size_t(i)], bytes = p.bytes[size_t(i)];
    steps.push_back({{"step", decode_step_name(DecodeStep(i))}, {"ms_per_token", 1e3 * sec / double(tokens)},
                     {"share", total > 0 ? sec / total : 0.0}, {"gb_per_token", bytes / double(tokens) / 1e9},
                     {"gb_per_s", sec > 0 ? bytes / sec / 1e9 : 0.0}});
  }
  return steps;
}

void print_profile(const DecodeProfile& p, int64_t tokens, double ceiling_gbs) {
  std::printf("\n%-22s %12s %7s %10s %9s\n", "step", "ms/token", "share", "GB/token", "GB/s");
  for (const Json& s : profile_json(p, tokens))
    std::printf("%-22s %12.3f %6.1f%% %10.4f %9.1f\n", s["step"].get<std::string>().c_str(),
                s["ms_per_token"].get<double>(), 100.0 * s["share"].get<double>(), s["gb_per_token"].get<double>(),
                s["gb_per_s"].get<double>());
  std::printf("(read bandwidth measured in this call: %.1f GB/s)\n", ceiling_gbs);
}

// train --profile: per phase of the timed steps, ms per step and share of the step's wall time;
// "other" is what no phase covers (the embedding's backward, the engine's buffer set-up).
Json train_profile_json(const TrainProfile& p) {
  Json phases = Json::array();
  const double steps = std::max(1, p.steps);
  double covered = 0.0;
  auto add = [&](const std::string& name, double sec) {
    phases.push_back({{"phase", name}, {"ms_per_step", 1e3 * sec / steps},
                      {"share", p.step_seconds > 0 ? sec / p.step_seconds : 0.0}});
    covered += sec;
  };
  for (int i = 0; i < int(Phase::Count); ++i) add(phase_name(Phase(i)), p.phases.seconds[size_t(i)]);
  add("optimizer (zero grads, AdamW)", p.optimizer_seconds);
  add("other", std::max(0.0, p.step_seconds - covered));
  return phases;
}

void print_train_profile(const TrainProfile& p, double bound_ms_per_step) {
  std::printf("\n%-30s %10s %7s\n", "phase", "ms/step", "share");
  for (const Json& s : train_profile_json(p))
    std::printf("%-30s %10.1f %6.1f%%\n", s["phase"].get<std::string>().c_str(), s["ms_per_step"].get<double>(),
                100.0 * s["share"].get<double>());
  std::printf("(a step at this machine's GEMM ceiling: %.1f ms)\n", bound_ms_per_step);
}

void print_result(const BenchArgs& a, const std::string& label, const Model& m, const BenchResult& r) {
  const double tps = median_of(r.rates);
  const bool decode = a.kind == BenchKind::Decode;
  const double achieved = tps * r.work / 1e9;     // GB/s or GFLOP/s
  const double bound = r.ceiling * 1e9 / r.work;  // tokens/s at the ceiling
  const char* unit = decode ? "GB/s" : "GFLOP/s";
  if (a.format == OutputFormat::Json) {
    Json j{{"command", kind_name(a.kind)}, {"model", label},         {"dtype", dtype_name(m.linear_dtype)},
           {"threads", num_threads()},    {"cpu", cpu_name()},       {"rounds_tokens_per_s", r.rates},
           {"tokens_per_s", tps},         {"unit", unit},            {"achieved", achieved},
           {"ceiling", r.ceiling},        {"bound_tokens_per_s", bound}, {"fraction_of_bound", tps / bound}};
    if (decode) j["gbytes_per_token"] = r.work / 1e9;
    else j["gflop_per_token"] = r.work / 1e9;
    if (a.kind == BenchKind::Prefill) j["prompt_tokens"] = a.prompt;
    if (decode) {
      j["depth"] = a.depth;
      j["decode_tokens"] = a.tokens;
    }
    j["compute"] = precision_name(a.run.precision);
    if (a.kind != BenchKind::Train) {
      j["exact_activations"] = a.run.exact_activations;
      j["kv_dtype"] = kv_dtype_word(a.run.kv_dtype);
    }
    if (a.kind == BenchKind::Train) {
      j["batch"] = a.train.batch;
      j["seq"] = a.train.seq;
      j["rank"] = a.train.rank;
      j["recompute"] = a.train.recompute;
      j["method"] = a.train.experts > 0 ? "molora" : "lora";
      if (a.train.experts > 0) {
        j["experts"] = a.train.experts;
        j["top_k"] = a.train.top_k;
      }
    }
    if (a.profile && a.kind == BenchKind::Train) j["profile"] = train_profile_json(r.train_profile);
    else if (a.profile) j["profile"] = profile_json(r.profile, a.tokens * a.rounds);
    print_json(j);
    return;
  }
  std::printf("taia bench %s: %s, %s weights, %d threads, %s\n", kind_name(a.kind), label.c_str(),
              dtype_name(m.linear_dtype), num_threads(), cpu_name().c_str());
  std::printf("%.1f tokens/s (median of %zu rounds: %.1f .. %.1f)\n", tps, r.rates.size(),
              *std::min_element(r.rates.begin(), r.rates.end()), *std::max_element(r.rates.begin(), r.rates.end()));
  if (decode)
    std::printf("reads %.3f GB per token -> %.1f GB/s; this machine reads %.1f GB/s over as many bytes: bound %.1f "
                "tokens/s, reached %.0f %%\n",
                r.work / 1e9, achieved, r.ceiling, bound, 100.0 * tps / bound);
  else
    std::printf("%.2f GFLOP per token -> %.1f GFLOP/s; this machine's %s GEMM: %.1f GFLOP/s (%.0f %%)\n",
                r.work / 1e9, achieved, a.run.precision == Precision::BF16 ? "BF16" : "F32", r.ceiling,
                100.0 * tps / bound);
  if (a.profile && a.kind == BenchKind::Train)
    print_train_profile(r.train_profile, 1e3 * double(a.train.batch * a.train.seq) / bound);
  else if (a.profile)
    print_profile(r.profile, a.tokens * a.rounds, r.ceiling);
}

void run_bench(const BenchArgs& a) {
  if (a.model.empty() == a.preset.empty())
    throw CLI::ValidationError("--model/--preset", "expected exactly one of -m/--model and --preset");
  std::string label;
  auto model = bench_model(a, &label);
  TAIA_CHECK(a.kind != BenchKind::Train || !model->has_block_weights() || a.run.precision == Precision::F32,
             "[bench] --compute bf16 multiplies F32 or BF16 weights; ", label, " is block-quantized (use --compute f32)");
  print_result(a, label, *model, run_kind(a, *model));
}

struct KindCommand {
  CLI::App* cmd;
  std::shared_ptr<BenchArgs> args;
};

// The options every kind shares; the caller adds its own.
KindCommand add_kind(CLI::App* bench, BenchKind kind, const char* help) {
  auto args = std::make_shared<BenchArgs>();
  args->kind = kind;
  CLI::App* cmd = bench->add_subcommand(kind_name(kind), help);
  cmd->add_option("-m,--model", args->model, "GGUF file or HF model folder");
  std::string presets;
  std::vector<std::string> names;
  for (const BenchPreset& p : bench_presets()) {
    presets += std::string("\n  ") + p.name + ": " + p.description;
    names.push_back(p.name);
  }
  cmd->add_option("--preset", args->preset, "A model shape with random weights:" + presets)->check(CLI::IsMember(names));
  add_dtype_option(cmd, &args->dtype, "Weights in memory: auto (as stored; F32 for a preset), f32, bf16, f16");
  cmd->add_option("--rounds", args->rounds,
                  kind == BenchKind::Train ? "Timed steps (the median is reported)" : "Timed rounds (the median is reported)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  add_no_mmap_option(cmd, &args->no_mmap);
  add_threads_option(cmd, &args->threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_bench(*args); });
  return {cmd, args};
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Tokens/s of prefill, decode or LoRA training beside this machine's "
                                                "measured ceiling (read bandwidth, GEMM GFLOP/s)");
  bench->require_subcommand(1);
  const KindCommand prefill = add_kind(bench, BenchKind::Prefill, "Prompt processing: one forward pass over a prompt");
  prefill.cmd->add_option("--prompt", prefill.args->prompt, "Prompt tokens")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  add_decoder_options(prefill.cmd, &prefill.args->run);
  const KindCommand decode = add_kind(bench, BenchKind::Decode, "Generation: one-token steps (bound by memory reads)");
  add_decoder_options(decode.cmd, &decode.args->run);
  decode.cmd->add_option("--tokens", decode.args->tokens, "Decoded tokens per round")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  decode.cmd->add_flag("--profile", decode.args->profile,
                       "Also time each step of the decode steps (projections, attention, lm head, ...) and the "
                       "bytes it reads: ms per token, share, GB/s");
  decode.cmd->add_option("--depth", decode.args->depth, "Prompt tokens in the cache before decoding starts")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  const KindCommand train = add_kind(bench, BenchKind::Train, "LoRA training steps (forward, backward, AdamW)");
  train.cmd->add_option("--batch", train.args->train.batch, "Sequences per step")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  train.cmd->add_option("--seq", train.args->train.seq, "Tokens per sequence")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  train.cmd->add_option("--rank", train.args->train.rank, "LoRA rank on all seven projections (alpha 2 x rank)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  add_compute_option(train.cmd, &train.args->run.precision, "f32, or bf16 (the frozen base's products in BF16)");
  train.cmd->add_option("--experts", train.args->train.experts, "MoLoRA: this many experts (rank --rank, top --top-k) "
                        "on gate, up and down instead of their LoRA (0: LoRA)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  train.cmd->add_option("--top-k", train.args->train.top_k, "MoLoRA: experts per token")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  add_recompute_option(train.cmd, &train.args->train.recompute);
  train.cmd->add_flag("--profile", train.args->profile,
                      "Also time each phase of the timed steps (base GEMMs, LoRA branches, attention, norms, "
                      "elementwise, LM head + loss, widening BF16 / quantized weight tiles, optimizer): ms per step "
                      "and share of the step");
}

}  // namespace taia::cli
