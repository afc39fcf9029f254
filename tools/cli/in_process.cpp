#include "in_process.h"

#include <CLI/CLI.hpp>
#include <algorithm>

#include "common.h"
#include "core/error.h"

namespace taia::cli {
namespace {

struct InProcessRun {
  const InProcessHooks* hooks = nullptr;
  Json result;
};
thread_local InProcessRun* current_run = nullptr;

}  // namespace

void register_all(CLI::App& app) {
  register_generate(app);
  register_forward(app);
  register_inspect(app);
  register_init_model(app);
  register_tokenize(app);
  register_train(app);
  register_merge(app);
  register_export(app);
  register_eval(app);
  register_report(app);
  register_demo(app);
  register_bench(app);
  register_analyze(app);
  register_serve(app);
}

const InProcessHooks& in_process_hooks() {
  static const InProcessHooks none;
  return current_run && current_run->hooks ? *current_run->hooks : none;
}

bool capture_json(const Json& j) {
  if (!current_run) return false;
  current_run->result = j;
  return true;
}

Json run_in_process(const std::vector<std::string>& args, const InProcessHooks& hooks) {
  TAIA_CHECK(!args.empty(), "[taia] expected a command name, got none");
  const std::string command = args[0];
  CLI::App app{"taia", "taia"};
  app.require_subcommand(1);
  register_all(app);
  const CLI::App* sub = nullptr;
  for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
    if (c->get_name() == command) sub = c;
  TAIA_CHECK(sub, "[taia] no command '", command, "'");
  std::vector<std::string> argv = args;
  if (sub->get_option_no_throw("--json")) {  // export: --format is its file format
    argv.push_back("--json");
  } else if (sub->get_option_no_throw("--format")) {
    argv.push_back("--format");
    argv.push_back("json");
  }
  std::reverse(argv.begin(), argv.end());  // CLI11 parses a reversed vector (it pops from the back)
  InProcessRun run{&hooks, nullptr};
  InProcessRun* outer = current_run;
  current_run = &run;
  try {
    app.parse(argv);
  } catch (const CLI::ParseError& e) {
    current_run = outer;
    fail("[taia ", command, "] ", e.get_name() == "CallForHelp" ? std::string("help is printed by the CLI")
                                                               : std::string(e.what()));
  } catch (...) {
    current_run = outer;
    throw;
  }
  current_run = outer;
  return run.result;
}

}  // namespace taia::cli
