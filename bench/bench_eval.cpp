// Multiple-choice scoring throughput (examples/s): taia's batched scorer (question rows once,
// options attending to them, several examples per pass) beside the plain way (each option
// appended to the question and run as its own sequence), on stories260K and on a random model
// shaped like Qwen2.5-0.5B. Synthetic examples: 64-token questions, 4 options of 3-5 tokens.
//
//   ./build/bench/bench_eval [--threads N] [--stories PATH.gguf] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_models.h"
#include "perf/presets.h"
#include "core/mmap_file.h"
#include "core/rng.h"
#include "core/threading.h"
#include "eval/scoring.h"
#include "model/init.h"
#include "model/loader.h"

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::vector<taia::LoglikRequest> synthetic_examples(int64_t n, int64_t vocab, uint64_t seed) {
  taia::Rng rng(seed);
  auto id = [&] { return int32_t(3 + rng.next_u64() % uint64_t(vocab - 3)); };
  std::vector<taia::LoglikRequest> out(static_cast<size_t>(n));
  for (auto& r : out) {
    r.context.push_back(1);
    for (int i = 0; i < 63; ++i) r.context.push_back(id());
    for (int k = 0; k < 4; ++k) {
      std::vector<int32_t> opt(size_t(3 + rng.next_u64() % 3));
      for (auto& t : opt) t = id();
      r.continuations.push_back(opt);
    }
  }
  return out;
}

// Every option as its own sequence through the plain forward pass (all logits).
double plain_examples_per_s(taia::Decoder& d, const std::vector<taia::LoglikRequest>& reqs) {
  const auto& c = d.model().config;
  std::vector<float> logits;
  const auto t = clock_type::now();
  for (const auto& r : reqs)
    for (const auto& opt : r.continuations) {
      std::vector<int32_t> ids = r.context;
      ids.insert(ids.end(), opt.begin(), opt.end());
      taia::KVCache cache(c, int64_t(ids.size()));
      logits.resize(ids.size() * size_t(c.vocab_size));
      d.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), true);
    }
  return double(reqs.size()) / seconds_since(t);
}

void row(const char* name, taia::Decoder& d, int64_t n, int64_t batch) {
  const auto reqs = synthetic_examples(n, d.model().config.vocab_size, 7);
  taia::score_loglik(d, {reqs[0]}, 1);  // warm-up
  auto t = clock_type::now();
  taia::score_loglik(d, reqs, 1);
  const double one = double(n) / seconds_since(t);
  t = clock_type::now();
  taia::score_loglik(d, reqs, batch);
  const double batched = double(n) / seconds_since(t);
  const double plain = plain_examples_per_s(d, reqs);
  std::printf("| %s | %lld | %.1f | %.1f | %.1f (batch %lld) | %.2fx |\n", name, (long long)n, plain, one, batched,
              (long long)batch, batched / plain);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const taia::bench::BenchArgs args = taia::bench::parse_bench_args(argc, argv, "bench_eval");
  if (!args.ok) return 2;
  const int threads = args.threads;
  const bool quick = args.quick;
  const std::string& stories = args.stories;
  taia::set_num_threads(threads);
  std::printf("threads %d; examples: 64-token question, 4 options of 3-5 tokens\n\n", threads);
  std::printf("| model | examples | plain (each option its own sequence) ex/s | shared prefix, 1 example/pass ex/s | "
              "shared prefix, batched ex/s | batched / plain |\n|---|---|---|---|---|---|\n");
  if (taia::file_exists(stories)) {
    auto m = taia::load_model(stories, {});
    taia::Decoder d(*m);
    row("stories260K", d, quick ? 32 : 256, 16);
  } else {
    std::fprintf(stderr, "skip stories260K: %s not found\n", stories.c_str());
  }
  auto m = taia::init_model(taia::bench_preset_config("qwen2-0.5b"), 1, taia::DType::F32);
  taia::Decoder d(*m);
  row("Qwen2.5-0.5B shape (random, F32)", d, quick ? 4 : 16, 8);
  return 0;
}
