// Prefill and decode tokens/s, printed beside the bound that memory bandwidth sets for decode
// (bytes read per decoded token / read bandwidth measured in the same run). The measurements
// are the library's (perf/), the ones `taia bench` prints for one model; this runs the set.
//
//   ./build/bench/bench_inference [--threads N] [--stories PATH.gguf] [--quick]
// Models: stories260K (GGUF fixture), random models of the presets qwen2-0.5b (F32 and BF16),
// qwen3-0.6b (BF16: QK-norm, head_dim 128) and gemma3-1b (BF16: GeGLU, sandwich norms, a 256K
// vocabulary).
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_models.h"
#include "core/mmap_file.h"
#include "core/threading.h"
#include "model/init.h"
#include "model/loader.h"
#include "perf/machine.h"
#include "perf/measure.h"
#include "perf/presets.h"

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// One table row: prefill of 128 tokens (3 rounds), `steps` decode steps after it (3 rounds).
void row(const char* name, const taia::Model& m, int64_t steps) {
  const int64_t prefill_len = 128;
  const double prefill = taia::median_of(taia::measure_prefill(m, prefill_len, 3));
  const double decode = taia::median_of(taia::measure_decode(m, prefill_len, steps, 3));
  const double bytes = taia::decode_bytes_per_token(m, prefill_len + steps / 2);
  const double bw = taia::read_bandwidth_gbs(size_t(bytes));
  const double bound = bw * 1e9 / bytes;
  std::printf("| %s | %s | %.0f | %.1f | %.4f | %.1f | %.1f | %.0f %% |\n", name, taia::dtype_name(m.linear_dtype),
              prefill, decode, bytes / 1e9, bw, bound, 100.0 * decode / bound);
  std::fflush(stdout);
}

std::unique_ptr<taia::Model> preset(const char* name, taia::DType dt) {
  const auto t = clock_type::now();
  auto m = taia::init_model(taia::bench_preset_config(name), 1, dt);
  std::fprintf(stderr, "initialised %s (%s) in %.1f s\n", name, taia::dtype_name(dt), seconds_since(t));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const taia::bench::BenchArgs args = taia::bench::parse_bench_args(argc, argv, "bench_inference");
  if (!args.ok) return 2;
  taia::set_num_threads(args.threads);
  std::printf("%s, threads %d, read bandwidth of a 4 GiB buffer (DRAM): %.1f GB/s\n\n", taia::cpu_name().c_str(),
              args.threads, taia::read_bandwidth_gbs(size_t(4) << 30));
  std::printf("| model | weights | prefill tok/s (T=128) | decode tok/s | GB read/token | read GB/s over that many bytes "
              "| decode bound tok/s | %% of bound |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  if (taia::file_exists(args.stories)) {
    for (taia::DType dt : {taia::DType::F32, taia::DType::BF16}) {
      taia::LoadOptions o;
      o.linear_dtype = dt;
      row("stories260K", *taia::load_model(args.stories, o), 256);
    }
  } else {
    std::printf("| stories260K | - | skipped: %s not found | | | | |\n", args.stories.c_str());
  }
  const int64_t steps = args.quick ? 8 : 32;
  for (taia::DType dt : {taia::DType::F32, taia::DType::BF16})
    row("Qwen2.5-0.5B shape (random)", *preset("qwen2-0.5b", dt), steps);
  row("Qwen3-0.6B shape (random)", *preset("qwen3-0.6b", taia::DType::BF16), steps);
  row("Gemma-3-1B shape (random)", *preset("gemma3-1b", taia::DType::BF16), steps);
  return 0;
}
