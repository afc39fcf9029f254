// The commands run inside another program (the Python module): the same options, parsed and
// checked by the same declarations as `taia CMD ...`, with the result that `--format json` would
// print handed back instead of printed.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/json_util.h"

namespace CLI {
class App;
}

namespace taia::cli {

// Adds every subcommand to app (the CLI's main and run_in_process build the same app).
void register_all(CLI::App& app);

struct InProcessHooks {
  // train: called after each step with its metrics line; false stops at that step (a checkpoint).
  std::function<bool(const Json& metrics)> on_step;
};

// Runs `taia args... --format json` in this process and returns what it would print (null for a
// command that prints nothing). Usage errors throw taia::Error with CLI11's message, prefixed
// "[taia CMD]"; the commands' own errors propagate unchanged.
Json run_in_process(const std::vector<std::string>& args, const InProcessHooks& hooks = {});

// The hooks of the command running in this thread (empty outside run_in_process).
const InProcessHooks& in_process_hooks();
// print_json's capture: true when a run_in_process caller on this thread took the JSON.
bool capture_json(const Json& j);

}  // namespace taia::cli
