// taia inspect: what a model file or folder is, and the problems found in it.
// Exit code 1 when problems are found, so scripts can use it as a validator.
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "model/inspect.h"

namespace taia::cli {
namespace {

struct InspectArgs {
  std::string path;
  OutputFormat format = OutputFormat::Text;
};

void run_inspect(const InspectArgs& a) {
  Json report = inspect_path(a.path);
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
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a model (GGUF, HF folder, .safetensors) and its problems");
  cmd->add_option("path", args->path, "GGUF file, HF model folder or .safetensors file")->required();
  add_format_option(cmd, &args->format);
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace taia::cli
