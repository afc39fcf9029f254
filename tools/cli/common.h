// Pieces every subcommand shares: registration, output format, id lists, model loading.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "kernels/linear.h"
#include "model/decoder.h"
#include "model/loader.h"
#include "core/enum_words.h"
#include "model/lora.h"
#include "model/modes.h"
#include "tokenizer/chat_template.h"
#include "train/method.h"

namespace taia::cli {

// Each subcommand adds itself to the app; its callback runs the command and may throw taia::Error.
void register_generate(CLI::App& app);
void register_forward(CLI::App& app);
void register_inspect(CLI::App& app);
void register_init_model(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_train(CLI::App& app);
void register_merge(CLI::App& app);
void register_export(CLI::App& app);
void register_eval(CLI::App& app);
void register_report(CLI::App& app);
void register_demo(CLI::App& app);
void register_bench(CLI::App& app);
void register_analyze(CLI::App& app);
void register_serve(CLI::App& app);

// An option whose words map to a library enum (one value set per concept, the library's words):
// "--method TEXT:{lora,molora,full}=lora", the enum set only when the option is given.
template <typename E>
CLI::Option* add_enum_option(CLI::App* cmd, const std::string& name, E* out, const EnumWords<E>& words,
                             const std::string& help) {
  std::vector<std::string> names;
  for (const auto& [word, value] : words) names.push_back(word);
  const std::string* current = word_of(words, *out);
  return cmd
      ->add_option_function<std::string>(
          name, [out, words](const std::string& given) { *out = *value_of(words, given); }, help)
      ->check(CLI::IsMember(names))  // runs before the function: value_of finds the word
      ->default_str(current ? *current : "");
}

enum class OutputFormat { Text, Json };
void add_format_option(CLI::App* cmd, OutputFormat* format);
void add_threads_option(CLI::App* cmd, int* threads);
// --tokenizer (instead of the model's own) and --chat-template (a built-in name; default:
// recognised from the model), declared here once for every command that reads text. `when`
// prefixes the help ("With --data: ").
void add_tokenizer_option(CLI::App* cmd, std::string* tokenizer, const std::string& when = "");
void add_chat_template_option(CLI::App* cmd, std::string* chat_template, const std::string& when = "");
// --dtype of the weights in memory (auto: as stored), one value set for every command that
// loads a model: auto, f32, bf16, f16. (init-model's and export's --dtype are file storage types.)
// Parsed into the type once (nullopt = auto); core's dtype_option_word gives the word back.
void add_dtype_option(CLI::App* cmd, std::optional<DType>* dtype, const char* help);
// --targets-like options: all, attn, ffn or a projection list, parsed into the mask when given
// (a bad list is a usage error naming the option).
CLI::Option* add_targets_option(CLI::App* cmd, const std::string& name, ModuleMask* targets, const std::string& help);
// --compute f32|bf16 (precision_name's words), for the commands that run a model (inference:
// Decoder::set_compute; train: mixed precision, with its own help).
void add_compute_option(CLI::App* cmd, Precision* compute, const char* help = nullptr);
// --compute, --exact-activations and --kv-dtype (model/decoder.h's DecoderSettings), for every
// command that runs a model; settings->kv_dtype holds the command's default cache type.
void add_decoder_options(CLI::App* cmd, DecoderSettings* settings);
// --method lora|molora|full (train/method.h's words).
void add_method_option(CLI::App* cmd, TrainMethod* method);

// "1,2,3" -> {1,2,3}; throws a usage error (CLI::ValidationError) for anything else.
std::vector<int32_t> parse_id_list(const std::string& text, const char* option);
// "8G", "512M", "100K", "4096" (bytes; binary units) -> bytes; usage error otherwise.
int64_t parse_byte_size(const std::string& text, const char* option);
std::optional<DType> dtype_option(const std::string& value);  // "" or "auto" -> nullopt

// --no-mmap: LoadOptions::copy_weights.
void add_no_mmap_option(CLI::App* cmd, bool* no_mmap);
// --recompute: EngineOptions::recompute (train, bench train).
void add_recompute_option(CLI::App* cmd, bool* recompute);
// Loads a model and checks the prompt ids against its vocabulary.
std::unique_ptr<Model> load_for_run(const std::string& path, std::optional<DType> dtype, int threads,
                                    bool no_mmap = false);

void print_json(const Json& j);  // one line on stdout

// For a model folder just written from `source`: "" when it holds tokenizer files, else a note
// that the vocabulary stays in the source (a GGUF file) and how to pass it.
std::string missing_tokenizer_note(const std::string& folder, const std::string& source);

// --mode base|vanilla|taia|taif|random-half[-N]|scaled or --modules q,k,... (the modes of
// model/modes.h), declared once for every command; --modules overrides --mode, and neither given
// means taia. `controls`: whether the command takes the update-size controls.
struct ModeArgs {
  std::string mode, modules;
  ModuleMask mask(const char* default_mode = kDefaultMode) const {
    return select_modules(mode, modules, default_mode);
  }
  // With the update-size controls (random-half[-N], scaled): for commands that hold the update.
  ModeSpec spec(const char* default_mode = kDefaultMode) const {
    return parse_mode_spec(!modules.empty() ? modules : mode.empty() ? std::string(default_mode) : mode);
  }
};
void add_mode_options(CLI::App* cmd, ModeArgs* args, const char* default_mode = kDefaultMode, bool controls = true);

// A data file in train's formats (--data) tokenized as training does: the tokenizer (the model's
// unless --tokenizer), the chat template (recognised unless --chat-template), --max-length.
struct DataFileArgs {
  std::string path, tokenizer, chat_template;
  int64_t max_length = 3072;
};
void add_data_file_options(CLI::App* cmd, DataFileArgs* args, bool required = true);
std::vector<std::vector<int32_t>> data_file_sequences(const DataFileArgs& args, const std::string& model_path);

// --adapter (a PEFT folder or a llama.cpp GGUF LoRA file), its --mode / --modules, and --merge.
struct AdapterArgs {
  std::string adapter;
  ModeArgs modes;
  bool merge = false;
};
void add_adapter_options(CLI::App* cmd, AdapterArgs* args);
// Loads the adapter (if any) and either merges the selected modules into the model or keeps
// them for the decoder to apply unmerged. Returns the adapter (kept alive by the caller).
std::unique_ptr<LoraAdapter> apply_adapter_args(const AdapterArgs& args, Model& model, ModuleMask* unmerged_mask);

}  // namespace taia::cli
