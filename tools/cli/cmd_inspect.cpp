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

namespace taia::cli {
namespace {

struct InspectArgs {
  std::string path, model;
  DataFileArgs data;
  std::string mode = "vanilla";
  OutputFormat format = OutputFormat::Text;
};

void run_inspect(const InspectArgs& a) {
  if (a.data.path.empty() != a.model.empty()) throw CLI::ValidationError("--data", "--data and -m/--model go together");
  Json report = inspect_path(a.path);
  if (!a.data.path.empty()) {
    TAIA_CHECK(report.contains("molora"), a.path, ": --data reports the routing of a MoLoRA adapter; this is not one ",
               "(no ", kMoloraConfigFile, ")");
    auto model = load_model(a.model, LoadOptions{});
    auto adapter = load_adapter(a.path, model->config);
    Json routing = inspect_expert_routing(*model, *adapter, parse_mode(a.mode), data_file_sequences(a.data, a.model));
    routing["data"] = a.data.path;
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
  cmd->add_option("--mode", args->mode, "With --data: the modules that run (vanilla: attention LoRA + experts, "
                                        "as in training; taif: experts only)")
      ->check(CLI::IsMember({"vanilla", "taif"}))->capture_default_str();
  add_data_file_options(cmd, &args->data, /*required=*/false);  // MoLoRA: each expert's share of the tokens
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace taia::cli
