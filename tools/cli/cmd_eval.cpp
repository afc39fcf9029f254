// taia eval: base / vanilla / TAIA / TAIF (or module lists) on downstream tasks in one run.
#include <iostream>
#include <sstream>

#include "common.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/answers.h"
#include "eval/evaluate.h"
#include "eval/predictions.h"
#include "model/adapter.h"
#include "model/tokenizer_loader.h"

namespace taia::cli {
namespace {

struct EvalArgs {
  std::string model, adapter, tokenizer, tasks, task_format, modes, shots = "0", out;
  std::string predictions;
  std::string refusal_phrases_file;
  std::optional<DType> dtype;  // --dtype (nullopt: as stored)
  DecoderSettings run{Precision::F32, false, DType::F16};  // --compute, --exact-activations, --kv-dtype
  bool no_mmap = false;
  bool no_chat = false, no_second_pass = false, bbh_cot = false;
  EvalSettings s;
  int threads = 0;
  OutputFormat format = OutputFormat::Text;
};

std::vector<std::string> split_list(const std::string& text, char separator = ',') {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, separator))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> read_refusal_phrases(const std::string& path) {
  std::vector<std::string> phrases;
  if (path.empty()) return phrases;
  std::stringstream ss(read_text_file(path));
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty() && line[0] != '#') phrases.push_back(line);
  TAIA_CHECK(!phrases.empty(), path, ": no refusal phrases (one per line)");
  return phrases;
}

// --predictions: completions made elsewhere, scored without a model.
void run_predictions_cmd(EvalArgs& a) {
  for (const auto& [given, name] : std::vector<std::pair<bool, const char*>>{
           {!a.model.empty(), "--model"}, {!a.adapter.empty(), "--adapter"}, {!a.modes.empty(), "--modes"},
           {a.shots != "0", "--shots"}, {!a.s.fewshot_file.empty(), "--fewshot-file"}})
    if (given)
      throw CLI::ValidationError("--predictions", std::string("scores completions made elsewhere; ") + name +
                                 " does not apply to it");
  const auto files = split_list(a.tasks);
  if (files.size() != 1)
    throw CLI::ValidationError("--predictions", "expected exactly one --tasks file, got " + std::to_string(files.size()));
  const Task task = load_task(files[0], a.task_format);
  const Json settings{{"model", nullptr}, {"task_files", files}, {"limit", a.s.limit}};
  const Json results =
      score_predictions(task, a.predictions, a.s.limit, read_refusal_phrases(a.refusal_phrases_file), a.out, settings);
  if (a.format == OutputFormat::Json)
    print_json(results);
  else
    std::cout << results_markdown(results) << "\nresults: " << a.out << "/results.json" << std::endl;
}

void run_eval_cmd(EvalArgs& a) {
  if (!a.predictions.empty()) return run_predictions_cmd(a);
  if (a.model.empty()) throw CLI::ValidationError("--model", "expected a model (or --predictions FILE)");
  EvalSettings& s = a.s;
  // Usage problems first, before anything is loaded.
  s.shots.clear();
  for (const auto& k : split_list(a.shots)) {
    try {
      size_t used = 0;
      const long long v = std::stoll(k, &used);
      if (used != k.size() || v < 0 || v > 64) throw std::invalid_argument(k);
      s.shots.push_back(v);
    } catch (const std::exception&) {
      throw CLI::ValidationError("--shots", "expected a list of numbers 0..64, got '" + a.shots + "'");
    }
  }
  if (s.shots.empty()) throw CLI::ValidationError("--shots", "expected at least one number");
  if (a.bbh_cot && s.shots != std::vector<int64_t>{0})
    throw CLI::ValidationError("--bbh-cot", "the chain-of-thought prompt holds its own 3 demonstrations; expected "
                               "--shots 0, got '" + a.shots + "'");
  std::string all_modes;
  for (const auto& m : mode_names()) all_modes += (all_modes.empty() ? "" : ",") + m;
  const std::string modes = a.modes.empty() ? (a.adapter.empty() ? kBaseMode : all_modes) : a.modes;
  // A module list ("q,k,v") is one mode: modes are separated by ';' when module lists are used.
  s.modes = split_list(modes, modes.find(';') != std::string::npos ? ';' : ',');
  for (const auto& m : s.modes) {
    try {
      parse_mode_spec(m);
    } catch (const Error& e) {
      throw CLI::ValidationError("--modes", e.what());
    }
  }
  s.chat = !a.no_chat;
  s.second_pass = !a.no_second_pass;
  s.refusal_phrases = read_refusal_phrases(a.refusal_phrases_file);

  std::vector<Task> tasks;
  for (const auto& path : split_list(a.tasks))
    for (Task& t : load_tasks(path, a.task_format)) {
      if (a.bbh_cot) use_bbh_cot_prompt(t);
      tasks.push_back(std::move(t));
    }
  TAIA_CHECK(!tasks.empty(), "[eval] --tasks names no file");
  auto model = load_for_run(a.model, a.dtype, a.threads, a.no_mmap);
  auto tok = load_tokenizer(a.tokenizer.empty() ? a.model : a.tokenizer);
  TAIA_CHECK(tok->vocab_size() <= model->config.vocab_size, a.model, ": the tokenizer has ", tok->vocab_size(),
             " tokens but the model only ", model->config.vocab_size);
  std::unique_ptr<LoraAdapter> adapter;
  if (!a.adapter.empty()) adapter = load_adapter(a.adapter, model->config);
  Decoder decoder(*model);
  decoder.configure(a.run);

  Json settings{{"model", a.model},
                {"adapter", a.adapter.empty() ? Json(nullptr) : Json(a.adapter)},
                {"modes", s.modes},
                {"shots", s.shots},
                {"limit", s.limit},
                {"batch_size", s.batch_size},
                {"chat", s.chat},
                {"mc_method", mc_method_name(s.mc_method)},
                {"max_new_tokens", s.max_new_tokens},
                {"refusal_tokens", s.refusal_tokens},
                {"max_length", s.max_length},
                {"perplexity_windows", perplexity_windows_name(s.perplexity_windows)},
                {"fewshot_file", s.fewshot_file},
                {"seed", s.seed},
                {"second_pass", s.second_pass},
                {"bbh_cot", a.bbh_cot},
                {"threads", a.threads},
                {"dtype", dtype_option_word(a.dtype)},
                {"compute", precision_name(a.run.precision)},
                {"exact_activations", a.run.exact_activations},
                {"kv_dtype", kv_dtype_word(a.run.kv_dtype)},
                {"task_files", split_list(a.tasks)}};
  const bool json = a.format == OutputFormat::Json;
  s.progress = !json;
  const Json results = run_eval(decoder, *tok, adapter.get(), tasks, s, a.out, settings, [&](const std::string& line) {
    if (!json) std::cerr << line << std::endl;
  });
  if (json)
    print_json(results);
  else
    std::cout << results_markdown(results) << "\nresults: " << a.out << "/results.json" << std::endl;
}

}  // namespace

void register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  EvalSettings& s = args->s;
  CLI::App* cmd = app.add_subcommand("eval", "Score base / vanilla / TAIA / TAIF on task files; writes results.json");
  cmd->add_option("-m,--model", args->model, "Base model: GGUF file or HF folder (required unless --predictions)");
  cmd->add_option("--predictions", args->predictions,
                  "Score completions made elsewhere instead of running a model: JSONL of {\"index\": I, "
                  "\"completion\": TEXT} (or \"id\") for the one --tasks file; written as mode 'predictions'");
  cmd->add_option("--adapter", args->adapter, "PEFT LoRA adapter folder or GGUF LoRA file");
  cmd->add_option("--modes", args->modes,
                  "Comma-separated modes (default: all four with --adapter, else base; module lists separated "
                  "by ';', e.g. 'taia;q,k,v'): " + modes_help());
  cmd->add_option("--tasks", args->tasks,
                  "Task files, comma-separated: GSM8K / MATH / SVAMP / ARC / CommonsenseQA / MedQA / lm-eval and "
                  "llm-foundry ICL / generic JSONL, MMLU / AdvBench CSV, BBH JSON, .txt (perplexity); a folder (e.g. "
                  "mmlu/test) evaluates every file in it and averages them")
      ->required();
  cmd->add_option("--task-format", args->task_format, "Read every task file as this format")
      ->check(CLI::IsMember(task_format_names()));
  cmd->add_flag("--bbh-cot", args->bbh_cot,
                "BIG-Bench Hard: prompt with the task's cot-prompts/TASK.txt (3-shot chain of thought, plain text), "
                "as the paper evaluates BBH");
  cmd->add_option("--shots", args->shots, "Few-shot demonstrations; a list (0,1,2,4) runs each")->capture_default_str();
  cmd->add_option("--fewshot-file", s.fewshot_file, "Demonstrations (default: the task's train split, else the task)");
  cmd->add_option("--limit", s.limit, "Score only the first N examples of each task (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-size", s.batch_size, "Examples per forward pass")
      ->check(CLI::Range(int64_t(1), int64_t(4096)))->capture_default_str();
  cmd->add_option("-o,--out", args->out, "Run folder: results.json and samples/")->required();
  cmd->add_flag("--no-chat", args->no_chat, "Plain 'Question: ... Answer:' prompts even if the model has a chat template");
  add_chat_template_option(cmd, &s.chat_template);
  add_enum_option(cmd, "--mc-method", &s.mc_method, mc_method_words(),
                  "Multiple choice: loglik (log-likelihood of each option) or letter (the generated option letter)");
  cmd->add_option("--max-new-tokens", s.max_new_tokens, "Reply length for generative tasks")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16))->capture_default_str();
  cmd->add_option("--refusal-tokens", s.refusal_tokens, "Reply length for refusal tasks")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 16))->capture_default_str();
  cmd->add_option("--max-length", s.max_length, "Perplexity window in tokens")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20))->capture_default_str();
  add_enum_option(cmd, "--perplexity-windows", &s.perplexity_windows, perplexity_windows_words(),
                  "disjoint (every token predicted once, within its window) or llama-cpp (llama-perplexity's: "
                  "BOS-led chunks of --max-length tokens, the second half of each scored; a shorter rest dropped)");
  cmd->add_option("--refusal-phrases", args->refusal_phrases_file, "File with one refusal phrase per line");
  cmd->add_flag("--no-second-pass", args->no_second_pass,
                "Do not continue with ' The answer is' when no answer was found");
  cmd->add_option("--seed", s.seed, "Seed of the few-shot draw")->capture_default_str();
  add_tokenizer_option(cmd, &args->tokenizer);
  add_dtype_option(cmd, &args->dtype, "Weights in memory: auto (as stored), f32, bf16, f16");
  add_decoder_options(cmd, &args->run);
  add_no_mmap_option(cmd, &args->no_mmap);
  add_threads_option(cmd, &args->threads);
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_eval_cmd(*args); });
}

}  // namespace taia::cli
