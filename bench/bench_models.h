// Command-line arguments the inference benchmarks share (model shapes: perf/presets.h).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>


namespace taia::bench {

// [--threads N] [--stories PATH.gguf] [--quick], shared by bench_inference and bench_eval.
struct BenchArgs {
  int threads = 2;
  bool quick = false;
  std::string stories = "../shared/fixtures/models/stories260K/stories260K.gguf";
  bool ok = true;
};

inline BenchArgs parse_bench_args(int argc, char** argv, const char* program) {
  BenchArgs b;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) b.threads = std::atoi(argv[++i]);
    else if (a == "--stories" && i + 1 < argc) b.stories = argv[++i];
    else if (a == "--quick") b.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--stories PATH.gguf] [--quick]\n", program);
      b.ok = false;
    }
  }
  return b;
}

}  // namespace taia::bench
