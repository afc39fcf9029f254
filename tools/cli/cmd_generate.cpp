// taia generate: continue a prompt with greedy or sampled decoding.
#include <iostream>

#include "common.h"
#include "eval/generate.h"

namespace taia::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt_ids;
  int64_t n = 64;
  float temperature = 0.8f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::string dtype = "auto";
  int threads = 0;
  OutputFormat format = OutputFormat::Text;
};

void run_generate(const GenerateArgs& a) {
  std::vector<int32_t> prompt = parse_id_list(a.prompt_ids, "--prompt-ids");
  auto model = load_for_run(a.model, a.dtype, a.threads);
  check_ids_in_vocab(prompt, model->config, a.model);
  Decoder decoder(*model);
  GenerateOptions options;
  options.max_new_tokens = a.n;
  options.sampling.temperature = a.temperature;
  options.sampling.top_k = a.top_k;
  options.sampling.top_p = a.top_p;
  options.sampling.repetition_penalty = a.repetition_penalty;
  options.sampling.seed = a.seed;
  options.stop_at_eos = !a.ignore_eos;
  if (a.format == OutputFormat::Text) {
    // Stream ids as they come: no tokenizer yet, so text mode prints ids.
    options.on_token = [](int32_t id) {
      std::cout << id << ' ' << std::flush;
      return true;
    };
  }
  GenerateResult r = generate(decoder, prompt, options);
  const double decode_tps = r.output_ids.size() > 1 && r.decode_seconds > 0
                                ? double(r.output_ids.size() - 1) / r.decode_seconds : 0.0;
  const double prefill_tps = r.prefill_seconds > 0 ? double(prompt.size()) / r.prefill_seconds : 0.0;
  if (a.format == OutputFormat::Json) {
    Json j;
    j["prompt_ids"] = prompt;
    j["output_ids"] = r.output_ids;
    j["stopped_at_eos"] = r.stopped_at_eos;
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    print_json(j);
  } else {
    std::cout << std::endl;
    std::cerr << "[" << r.output_ids.size() << " tokens; prefill " << prefill_tps << " tok/s, decode " << decode_tps
              << " tok/s" << (r.stopped_at_eos ? "; stopped at EOS" : "") << "]" << std::endl;
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt (greedy with --temperature 0, else sampled)");
  cmd->add_option("-m,--model", args->model, "GGUF file or HF model folder")->required();
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as comma-separated token ids, e.g. 1,403,407")->required();
  cmd->add_option("-n,--max-new-tokens", args->n, "Tokens to generate")->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "Keep the K most likely tokens (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass in (0, 1]")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  cmd->add_option("--repetition-penalty", args->repetition_penalty, "HF-style repetition penalty (1: off)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Sampling seed");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the model's EOS ids");
  add_dtype_option(cmd, &args->dtype, "Weight storage in memory: auto (as stored), f32, bf16");
  add_threads_option(cmd, &args->threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace taia::cli
