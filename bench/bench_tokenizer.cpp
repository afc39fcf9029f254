// Encode throughput of taia's tokenizers on a JSON Lines file of {"text": ...} lines
// (one encode call per line, no special tokens), one pass with a cold word cache.
//   ./build/bench/bench_tokenizer TOKENIZER LINES.jsonl
// Prints {"seconds": S, "bytes": B, "tokens": T, "mb_per_s": ...}. bench/run_tokenizer_bench.sh
// runs it beside HF's JavaScript tokenizer on the same lines.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "model/tokenizer_loader.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER LINES.jsonl\n");
    return 2;
  }
  try {
    auto tok = taia::load_tokenizer(argv[1]);
    std::ifstream in(argv[2]);
    std::vector<std::string> texts;
    std::string line;
    size_t bytes = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      texts.push_back(taia::parse_json_text(line, argv[2])["text"].get<std::string>());
      bytes += texts.back().size();
    }
    size_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::string& t : texts) tokens += tok->encode(t, false).ids.size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"seconds\": %.4f, \"bytes\": %zu, \"tokens\": %zu, \"mb_per_s\": %.2f}\n", s, bytes, tokens,
                double(bytes) / s / 1e6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
