// Trains a LoRA adapter and scores the base and the four modes through taia's public API
// (include/taia/taia.h): train with the CLI's options and a per-step callback, then evaluate.
//   taia_example_finetune MODEL DATA OUT TASKS [--stop-after N] [option=value ...]
// Prints each step's metrics line, the run's summary and the evaluation's results (JSON lines).
#include <taia/taia.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: " << argv[0] << " MODEL DATA OUT TASKS [--stop-after N] [option=value ...]\n";
    return 2;
  }
  const std::string model = argv[1], data = argv[2], out = argv[3], tasks = argv[4];
  taia::api::CommandOptions options;
  long stop_after = -1;  // stop training after this many steps (a checkpoint is written)
  for (int i = 5; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--stop-after" && i + 1 < argc) {
      stop_after = std::stol(argv[++i]);
      continue;
    }
    const size_t eq = arg.find('=');
    options.emplace_back(arg.substr(0, eq), eq == std::string::npos ? "" : arg.substr(eq + 1));
  }
  try {
    long steps = 0;
    const std::string run = taia::api::train(model, data, out, options, [&](const std::string& metrics) {
      std::cout << metrics << "\n";
      return ++steps != stop_after;
    });
    std::cout << run << "\n";
    if (steps == stop_after) return 0;
    std::cout << taia::api::evaluate(model, tasks, out + "/eval",
                                     {{"adapter", out}, {"modes", "base,vanilla,taia,taif"}, {"threads", "2"}})
              << std::endl;
  } catch (const taia::api::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
