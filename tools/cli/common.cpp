#include "common.h"
#include "in_process.h"

#include <algorithm>
#include <iostream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/threading.h"
#include "model/adapter.h"
#include "model/update_controls.h"
#include "model/merge.h"
#include "model/tokenizer_loader.h"
#include "train/data.h"

namespace taia::cli {

void add_format_option(CLI::App* cmd, OutputFormat* format) {
  static const std::map<std::string, OutputFormat> names{{"text", OutputFormat::Text}, {"json", OutputFormat::Json}};
  cmd->add_option("--format", *format, "Output format: text or json")
      ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
      ->default_str("text");
}

void add_threads_option(CLI::App* cmd, int* threads) {
  cmd->add_option("-t,--threads", *threads, "Worker threads (0: all cores)")->check(CLI::Range(0, 4096))->default_val(0);
}

void add_tokenizer_option(CLI::App* cmd, std::string* tokenizer, const std::string& when) {
  cmd->add_option("--tokenizer", *tokenizer, when + (when.empty() ? "A" : "a") + " tokenizer to use instead of the "
                  "model's own (tokenizer.json, SentencePiece .model, GGUF file or model folder)");
}

void add_chat_template_option(CLI::App* cmd, std::string* chat_template, const std::string& when) {
  cmd->add_option("--chat-template", *chat_template, when + (when.empty() ? "The" : "the") + " chat template (default: "
                  "recognised from the model)")
      ->check(CLI::IsMember(chat_template_names()));
}

void add_dtype_option(CLI::App* cmd, std::optional<DType>* dtype, const char* help) {
  cmd->add_option_function<std::string>(
         "--dtype", [dtype](const std::string& word) { *dtype = dtype_option(word); }, help)
      ->check(CLI::IsMember({"auto", "f32", "bf16", "f16"}))
      ->default_str("auto");
}

CLI::Option* add_targets_option(CLI::App* cmd, const std::string& name, ModuleMask* targets, const std::string& help) {
  return cmd->add_option_function<std::string>(
         name,
         [name, targets](const std::string& spec) {
           try {
             *targets = parse_targets(spec);
           } catch (const Error& e) {
             throw CLI::ValidationError(name, e.what());
           }
         },
         help)
      ->default_str(targets_spec(*targets));
}

void add_compute_option(CLI::App* cmd, Precision* compute, const char* help) {
  add_enum_option(cmd, "--compute", compute, precision_words(), help ? help :
                  "Products: f32 (exact, the default) or bf16 (BF16 weights only: activations rounded to BF16 "
                  "before each base projection and the LM head, F32 sums, as llama.cpp and HF's bfloat16 models; "
                  "prefill at BF16 GEMM speed)");
}

void add_decoder_options(CLI::App* cmd, DecoderSettings* settings) {
  add_compute_option(cmd, &settings->precision);
  cmd->add_flag("--exact-activations", settings->exact_activations,
                "Quantized files (Q4_0 .. Q6_K): multiply F32 activations with the weights widened to F32 at "
                "every step, instead of 8-bit activations and integer dot products on decode rows (the default, "
                "as llama.cpp; faster, logits differ by about 1 %)");
  add_enum_option(cmd, "--kv-dtype", &settings->kv_dtype, kv_dtype_words(),
                  "Type the KV cache stores keys and values in: f32 (exact), bf16, f16 (llama.cpp's default: half "
                  "of f32's bytes per position) or q8_0 (blocks of 32 with an F16 scale: 34 bytes per 32 values; "
                  "head_dim a multiple of 32)");
}

void add_method_option(CLI::App* cmd, TrainMethod* method) {
  add_enum_option(cmd, "--method", method, train_methods(), "lora, molora (LoRA experts on the FFN, plain LoRA on "
                  "attention: the paper's MoLoRA) or full");
}

std::vector<int32_t> parse_id_list(const std::string& text, const char* option) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= text.size()) {
    size_t comma = text.find(',', i);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(i, comma - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      throw CLI::ValidationError(option, "expected comma-separated non-negative token ids, got '" + item + "'");
    ids.push_back(int32_t(v));
    i = comma + 1;
  }
  return ids;
}

std::optional<DType> dtype_option(const std::string& value) {
  if (value.empty() || value == "auto") return std::nullopt;
  return parse_dtype(value);
}

int64_t parse_byte_size(const std::string& text, const char* option) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  int shift = -1;
  if (unit.empty() || unit == "B") shift = 0;
  else if (unit == "K" || unit == "KB" || unit == "KiB") shift = 10;
  else if (unit == "M" || unit == "MB" || unit == "MiB") shift = 20;
  else if (unit == "G" || unit == "GB" || unit == "GiB") shift = 30;
  else if (unit == "T" || unit == "TB" || unit == "TiB") shift = 40;
  if (used == 0 || shift < 0 || !(v > 0) || v * double(int64_t(1) << shift) > 9e18)
    throw CLI::ValidationError(option, "expected a size such as 8G, 512M or 4096, got '" + text + "'");
  return int64_t(v * double(int64_t(1) << shift));
}

void add_no_mmap_option(CLI::App* cmd, bool* no_mmap) {
  cmd->add_flag("--no-mmap", *no_mmap,
                "Copy a GGUF's weights into memory instead of using them from the file's mapping (as llama.cpp's "
                "--no-mmap): slower to load, sometimes faster to decode");
}

void add_recompute_option(CLI::App* cmd, bool* recompute) {
  cmd->add_flag("--recompute", *recompute, "Keep only each layer's input and recompute its activations during "
                "backward (less memory: ~1 / layers of the activations, one more forward pass)");
}

std::unique_ptr<Model> load_for_run(const std::string& path, std::optional<DType> dtype, int threads, bool no_mmap) {
  set_num_threads(threads);
  LoadOptions options;
  options.linear_dtype = dtype;
  options.copy_weights = no_mmap;
  return load_model(path, options);
}

void print_json(const Json& j) {
  if (!capture_json(j)) std::cout << j.dump() << std::endl;
}

std::string missing_tokenizer_note(const std::string& folder, const std::string& source) {
  for (const char* f : {"tokenizer.json", "tokenizer.model"})
    if (file_exists(folder + "/" + f)) return "";
  if (is_directory(source)) return "no tokenizer files: " + source + " has none to copy";
  return "no tokenizer files: the vocabulary is inside " + source + "; pass --tokenizer " + source +
         " to taia eval / generate";
}

void add_mode_options(CLI::App* cmd, ModeArgs* args, const char* default_mode, bool controls) {
  std::string help = modes_help();
  if (!controls) help = help.substr(0, help.find("; update-size controls"));
  auto* mode = cmd->add_option("--mode", args->mode, "Which updates run (default " + std::string(default_mode) + "): " + help)
                   ->check(CLI::Validator(
                       [controls](std::string& m) -> std::string {
                         const auto& names = mode_names();
                         if (controls ? is_named_mode(m) : std::find(names.begin(), names.end(), m) != names.end())
                           return "";
                         return std::string("expected ") + (controls ? kNamedModesWords : "base, vanilla, taia or taif") +
                                ", got '" + m + "'";
                       },
                       "MODE"));
  cmd->add_option("--modules", args->modules, "Explicit module list instead of --mode, e.g. q,k,v,o")->excludes(mode);
}

void add_adapter_options(CLI::App* cmd, AdapterArgs* args) {
  cmd->add_option("--adapter", args->adapter, "PEFT LoRA adapter folder or llama.cpp GGUF LoRA file");
  add_mode_options(cmd, &args->modes);
  cmd->add_flag("--merge", args->merge, "Merge the selected modules into the weights instead of applying them at run time");
}

void add_data_file_options(CLI::App* cmd, DataFileArgs* args, bool required) {
  auto* data = cmd->add_option("--data", args->path, "A data file in train's formats (Alpaca / ShareGPT / OpenAI chat "
                                                     "JSON or JSONL, or .txt), tokenized as training does");
  if (required) data->required();
  add_tokenizer_option(cmd, &args->tokenizer, "With --data: ");
  add_chat_template_option(cmd, &args->chat_template, "With --data: ");
  cmd->add_option("--max-length", args->max_length, "With --data: truncate sequences to this many tokens")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20))
      ->capture_default_str();
}

std::vector<std::vector<int32_t>> data_file_sequences(const DataFileArgs& a, const std::string& model_path) {
  auto tok = load_tokenizer(a.tokenizer.empty() ? model_path : a.tokenizer);
  const ChatTemplate chat = a.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(a.chat_template);
  DataStats stats;
  const std::vector<Example> examples =
      tokenize_records(load_records(a.path, false, stats), *tok, chat, a.max_length, stats);
  std::vector<std::vector<int32_t>> seqs;
  for (const Example& e : examples) seqs.push_back(e.ids);
  return seqs;
}

std::unique_ptr<LoraAdapter> apply_adapter_args(const AdapterArgs& a, Model& model, ModuleMask* unmerged_mask) {
  *unmerged_mask = ModuleMask{};
  if (a.adapter.empty()) {
    if (!a.modes.mode.empty() || !a.modes.modules.empty())
      throw CLI::ValidationError("--mode/--modules", "need --adapter");
    return nullptr;
  }
  auto adapter = load_adapter(a.adapter, model.config);
  const ModuleMask mask = apply_mode_in_place(*adapter, a.modes.spec());
  if (a.merge)
    merge_adapter(model, *adapter, mask);
  else
    *unmerged_mask = mask;
  return adapter;
}

}  // namespace taia::cli
