// taia inspect: what a model file or folder (or an adapter folder) is, and the problems found
// in it. Exit code 1 when problems are found, so scripts can use it as a validator. For a MoLoRA
// adapter, --data with -m runs the data through base + adapter and adds how the routers spread
// the tokens over the experts.
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "model/adapter.h"
#include "model/inspect.h"
#include "model/loader.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"
#include "train/data.h"

namespace taia::cli {
namespace {

struct InspectArgs {
  std::string path, model, data, tokenizer, chat_template;
  std::string mode = "vanilla";
  int64_t max_length = 3072;
  OutputFormat format = OutputFormat::Text;
};

// The data file's sequences as training would tokenize them (chat template, --max-length).
std::vector<std::vector<int32_t>> data_sequences(const InspectArgs& a) {
  auto tok = load_tokenizer(a.tokenizer.empty() ? a.model : a.tokenizer);
  const ChatTemplate chat = a.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(a.chat_template);
  DataStats stats;
  const std::vector<Example> examples =
      tokenize_records(load_records(a.data, false, stats), *tok, chat, a.max_length, stats);
  std::vector<std::vector<int32_t>> seqs;
  for (const Example& e : examples) seqs.push_back(e.ids);
  return seqs;
}

void run_inspect(const InspectArgs& a) {
  if (a.data.empty() != a.model.empty()) throw CLI::ValidationError("--data", "--data and -m/--model go together");
  Json report = inspect_path(a.path);
  if (!a.data.empty()) {
    TAIA_CHECK(report.contains("molora"), a.path, ": --data reports the routing of a MoLoRA adapter; this is not one ",
               "(no ", kMoloraConfigFile, ")");
    auto model = load_model(a.model, LoadOptions{});
    auto adapter = load_adapter(a.path, model->config);
    Json routing = inspect_expert_routing(*model, *adapter, parse_mode(a.mode), data_sequences(a));
    routing["data"] = a.data;
    report["molora"]["routing"] = routing;
  }
  if (a.format == OutputFormat::Json)
    print_json(report);
  else
    std::cout << inspect_to_text(report);
  TAIA_CHECK(report["problems"].empty(), a.path, ": ", report["problems"].size(), " problem(s) found, first: ",
             report["problems"][0].get<std::string>());
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a model (GGUF, HF folder, .safetensors) or an adapter "
                                                "folder, and its problems");
  cmd->add_option("path", args->path, "GGUF file, HF model folder, .safetensors file or adapter folder")->required();
  cmd->add_option("-m,--model", args->model, "MoLoRA adapters: the base model, to route --data through");
  cmd->add_option("--data", args->data, "MoLoRA adapters: a data file (train's formats); reports the share of "
                                        "tokens each expert receives");
  cmd->add_option("--mode", args->mode, "With --data: the modules that run (vanilla: attention LoRA + experts, "
                                        "as in training; taif: experts only)")
      ->check(CLI::IsMember({"vanilla", "taif"}))->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer, "With --data: the tokenizer, if not the model's");
  cmd->add_option("--chat-template", args->chat_template, "With --data: the chat template (default: the model's)")
      ->check(CLI::IsMember(chat_template_names()));
  cmd->add_option("--max-length", args->max_length, "With --data: truncate sequences as train does")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 20))->capture_default_str();
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace taia::cli
