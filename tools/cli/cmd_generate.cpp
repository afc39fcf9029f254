// taia generate: continue a prompt (ids, text, or a chat turn) with greedy or sampled decoding.
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "generate/generate.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"

namespace taia::cli {
namespace {

struct GenerateArgs {
  std::string model, tokenizer;
  DecoderSettings run{Precision::F32, false, DType::F16};  // --compute, --exact-activations, --kv-dtype
  bool no_mmap = false;
  std::string prompt_ids, prompt, chat_template;
  bool chat = false;
  bool no_thinking = false;
  int64_t n = 64;
  float temperature = 0.8f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  int threads = 0;
  OutputFormat format = OutputFormat::Text;
  AdapterArgs adapter;
};

void run_generate(const GenerateArgs& a) {
  std::vector<int32_t> prompt;
  if (!a.prompt_ids.empty()) prompt = parse_id_list(a.prompt_ids, "--prompt-ids");  // usage errors first
  auto model = load_for_run(a.model, a.dtype, a.threads, a.no_mmap);
  // The tokenizer: --tokenizer, else what the model carries (GGUF vocabulary, files in the folder).
  std::unique_ptr<Tokenizer> tok;
  if (!a.tokenizer.empty()) {
    tok = load_tokenizer(a.tokenizer);
  } else if (!a.prompt.empty() || a.format == OutputFormat::Text || a.chat) {
    try {
      tok = load_tokenizer(a.model);
    } catch (const Error& e) {
      TAIA_CHECK(a.prompt.empty() && !a.chat, a.model, ": --prompt needs a tokenizer and none was found (", e.what(),
                 "); pass --tokenizer PATH or use --prompt-ids");
    }
  }
  std::string chat_template_name;
  if (a.prompt_ids.empty() && a.chat) {
    ChatTemplate t = a.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(a.chat_template);
    if (a.no_thinking) t.enable_thinking = false;
    chat_template_name = t.name;
    prompt = encode_chat(*tok, t, {{"user", a.prompt}}, /*add_generation_prompt=*/true).ids;
  } else if (a.prompt_ids.empty()) {
    prompt = tok->encode(a.prompt, /*add_special=*/true).ids;
  }
  TAIA_CHECK(!prompt.empty(), "[generate] the prompt encodes to no tokens");
  check_ids_in_vocab(prompt, model->config, a.model);
  TAIA_CHECK(!tok || tok->vocab_size() <= model->config.vocab_size, a.model, ": the tokenizer has ", tok->vocab_size(),
             " tokens but the model only ", model->config.vocab_size);

  ModuleMask mask;
  auto adapter = apply_adapter_args(a.adapter, *model, &mask);
  Decoder decoder(*model);
  decoder.set_adapter(adapter.get(), mask);
  decoder.configure(a.run);
  GenerateOptions options;
  options.max_new_tokens = a.n;
  options.sampling.temperature = a.temperature;
  options.sampling.top_k = a.top_k;
  options.sampling.top_p = a.top_p;
  options.sampling.repetition_penalty = a.repetition_penalty;
  options.sampling.seed = a.seed;
  options.stop_at_eos = !a.ignore_eos;
  options.eos_ids = stop_token_ids(model->config, tok.get(), a.chat);
  if (tok) options.vocab_limit = tok->vocab_size();  // padded embedding rows have no text
  std::unique_ptr<IncrementalDecoder> stream;
  if (a.format == OutputFormat::Text) {
    if (tok) {
      stream = std::make_unique<IncrementalDecoder>(*tok, /*skip_special=*/true);
      options.on_token = [&](int32_t id) {
        std::cout << stream->push(id) << std::flush;
        return true;
      };
    } else {
      options.on_token = [](int32_t id) {
        std::cout << id << ' ' << std::flush;
        return true;
      };
    }
  }
  GenerateResult r = generate(decoder, prompt, options);
  const double decode_tps = r.output_ids.size() > 1 && r.decode_seconds > 0
                                ? double(r.output_ids.size() - 1) / r.decode_seconds : 0.0;
  const double prefill_tps = r.prefill_seconds > 0 ? double(prompt.size()) / r.prefill_seconds : 0.0;
  if (a.format == OutputFormat::Json) {
    Json j;
    j["prompt_ids"] = prompt;
    j["output_ids"] = r.output_ids;
    j["text"] = tok ? Json(tok->decode(r.output_ids, /*skip_special=*/true)) : Json(nullptr);
    if (!chat_template_name.empty()) j["chat_template"] = chat_template_name;
    j["stopped_at_eos"] = r.stopped_at_eos;
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    j["kv_cache_bytes"] = r.kv_cache_bytes;
    std::cout << j.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl;
  } else {
    if (stream) std::cout << stream->flush();
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
  auto* ids = cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as comma-separated token ids, e.g. 1,403,407");
  auto* text = cmd->add_option("-p,--prompt", args->prompt, "Prompt text (encoded with the model's tokenizer, BOS added)");
  ids->excludes(text);
  auto* chat = cmd->add_flag("--chat", args->chat, "Wrap --prompt as a user turn in the chat template, then generate the reply")
      ->needs(text);
  cmd->add_flag("--no-thinking", args->no_thinking,
                "With --chat on Qwen3: render enable_thinking=False (an empty <think> block opens the reply)")
      ->needs(chat);
  add_chat_template_option(cmd, &args->chat_template);
  add_tokenizer_option(cmd, &args->tokenizer);
  cmd->add_option("-n,--max-new-tokens", args->n, "Tokens to generate")->check(CLI::Range(int64_t(0), int64_t(1) << 24));
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0 = greedy")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--top-k", args->top_k, "Keep the K most likely tokens (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass in (0, 1]")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  cmd->add_option("--repetition-penalty", args->repetition_penalty, "HF-style repetition penalty (1: off)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Sampling seed");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the model's EOS ids");
  add_dtype_option(cmd, &args->dtype, "Weights in memory: auto (as stored), f32, bf16, f16");
  add_decoder_options(cmd, &args->run);
  add_no_mmap_option(cmd, &args->no_mmap);
  add_adapter_options(cmd, &args->adapter);
  add_threads_option(cmd, &args->threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] {
    if (args->prompt_ids.empty() && args->prompt.empty())
      throw CLI::RequiredError("--prompt-ids or --prompt");
    run_generate(*args);
  });
}

}  // namespace taia::cli
