// Prefill and decode tokens/s, printed beside the bound that memory bandwidth sets for decode
// (bytes read per decoded token / read bandwidth measured in the same run).
//
//   ./build/bench/bench_inference [--threads N] [--stories PATH.gguf] [--quick]
// Models: stories260K (GGUF fixture), random models shaped like Qwen2.5-0.5B (hidden 896, 24
// layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936; F32 and BF16) and Qwen3-0.6B
// (bench_models.h; BF16: QK-norm, head_dim 128) and Gemma-3-1B (BF16: GeGLU, sandwich norms,
// a 256K vocabulary).
#include <immintrin.h>
#include <omp.h>

#include <cstdlib>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_models.h"
#include "core/mmap_file.h"
#include "core/threading.h"
#include "model/decoder.h"
#include "model/init.h"
#include "model/loader.h"

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Read bandwidth over a buffer of `bytes` bytes, read cyclically like decode reads the weights
// (so it sees the same cache effects: a model that partly fits in the last-level cache gets a
// higher bound). Four independent AVX-512 accumulators per thread; best of software-prefetch
// distances 0 (hardware only) and 4 KiB; median of the passes of each.
double read_bandwidth_gbs(size_t bytes) {
  const size_t n = std::max<size_t>(bytes / sizeof(float) / 64 * 64, 64);
  float* a = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = 1.0f;
  const int reps = int(std::clamp<size_t>((size_t(2) << 30) / (n * sizeof(float)), 5, 2000));
  double best = 0;
  volatile double sink = 0;
  for (size_t prefetch_floats : {size_t(0), size_t(1024)}) {
    std::vector<double> rates;
    for (int rep = 0; rep < reps; ++rep) {
      auto t = clock_type::now();
      double total = 0;
#pragma omp parallel reduction(+ : total)
      {
#if defined(__AVX512F__)
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i += 64) {
          if (prefetch_floats) _mm_prefetch(reinterpret_cast<const char*>(a + i + prefetch_floats), _MM_HINT_T0);
          s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
          s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
          s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
          s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
        }
        total += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#else
        float acc[64] = {};
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i += 64)
          for (int j = 0; j < 64; ++j) acc[j] += a[i + size_t(j)];
        for (float v : acc) total += v;
#endif
      }
      const double s = seconds_since(t);
      sink = sink + total;
      rates.push_back(double(n * sizeof(float)) / s / 1e9);
    }
    best = std::max(best, median(rates));
  }
  std::free(a);
  return best;
}

// Bytes one decode step reads: every linear weight and the LM head, norms, one embedding row,
// and the keys/values of `ctx` positions.
double decode_bytes(const taia::Model& m, int64_t ctx) {
  const taia::ModelConfig& c = m.config;
  const double wbytes = double(taia::dtype_size(m.linear_dtype));
  const double D = double(c.hidden_size), I = double(c.intermediate_size), Q = double(c.q_dim()),
               KV = double(c.kv_dim()), V = double(c.vocab_size);
  const double per_layer = wbytes * (D * Q + 2 * D * KV + Q * D + 3 * D * I) + 4 * 2 * D + 4 * 2 * KV * double(ctx);
  return double(c.num_layers) * per_layer + wbytes * (V * D + D) + 4 * D;
}

struct Result {
  double prefill_tps, decode_tps, bound_tps, gbytes_per_token;
};

Result run(const taia::Model& m, int64_t prefill_len, int64_t decode_steps) {
  taia::Decoder d(m);
  const int64_t V = m.config.vocab_size;
  std::vector<int32_t> prompt(static_cast<size_t>(prefill_len));
  for (int64_t i = 0; i < prefill_len; ++i) prompt[size_t(i)] = int32_t((i * 7919 + 13) % V);
  std::vector<float> logits(static_cast<size_t>(V));
  taia::KVCache cache(m.config, prefill_len + decode_steps + 1);
  // Warm-up (first-touch of pages, oneDNN kernel generation).
  d.forward(cache, prompt.data(), prefill_len, logits.data(), false);
  std::vector<double> prefill;
  for (int rep = 0; rep < 3; ++rep) {
    cache.clear();
    auto t = clock_type::now();
    d.forward(cache, prompt.data(), prefill_len, logits.data(), false);
    prefill.push_back(double(prefill_len) / seconds_since(t));
  }
  std::vector<double> step_times;
  int32_t next = 1;
  for (int64_t s = 0; s < decode_steps; ++s) {
    auto t = clock_type::now();
    d.forward(cache, &next, 1, logits.data(), false);
    step_times.push_back(seconds_since(t));
    next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  Result r{};
  r.prefill_tps = median(prefill);
  r.decode_tps = 1.0 / median(step_times);
  r.gbytes_per_token = decode_bytes(m, prefill_len + decode_steps / 2) / 1e9;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const taia::bench::BenchArgs args = taia::bench::parse_bench_args(argc, argv, "bench_inference");
  if (!args.ok) return 2;
  const int threads = args.threads;
  const bool quick = args.quick;
  const std::string& stories = args.stories;
  taia::set_num_threads(threads);
  std::printf("threads %d, read bandwidth of a 4 GiB buffer (DRAM): %.1f GB/s\n\n", threads,
              read_bandwidth_gbs(size_t(4) << 30));
  std::printf("| model | weights | prefill tok/s (T=128) | decode tok/s | GB read/token | read GB/s over that many bytes "
              "| decode bound tok/s | %% of bound |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  auto row = [&](const char* name, const taia::Model& m, int64_t prefill_len, int64_t steps) {
    Result r = run(m, prefill_len, steps);
    const double bw = read_bandwidth_gbs(size_t(r.gbytes_per_token * 1e9));
    r.bound_tps = bw / r.gbytes_per_token;
    std::printf("| %s | %s | %.0f | %.1f | %.4f | %.1f | %.1f | %.0f %% |\n", name, taia::dtype_name(m.linear_dtype),
                r.prefill_tps, r.decode_tps, r.gbytes_per_token, bw, r.bound_tps, 100.0 * r.decode_tps / r.bound_tps);
    std::fflush(stdout);
  };
  if (taia::file_exists(stories)) {
    for (taia::DType dt : {taia::DType::F32, taia::DType::BF16}) {
      taia::LoadOptions o;
      o.linear_dtype = dt;
      auto m = taia::load_model(stories, o);
      row("stories260K", *m, 128, 256);
    }
  } else {
    std::printf("| stories260K | - | skipped: %s not found | | | | |\n", stories.c_str());
  }
  const int64_t steps = quick ? 8 : 32;
  for (taia::DType dt : {taia::DType::F32, taia::DType::BF16}) {
    auto t = clock_type::now();
    auto m = taia::init_model(taia::bench::qwen25_05b_shape(), 1, dt);
    std::fprintf(stderr, "initialised Qwen2.5-0.5B-shaped %s model in %.1f s\n", taia::dtype_name(dt), seconds_since(t));
    row("Qwen2.5-0.5B shape (random)", *m, 128, steps);
  }
  {
    auto t = clock_type::now();
    auto m = taia::init_model(taia::bench::qwen3_06b_shape(), 1, taia::DType::BF16);
    std::fprintf(stderr, "initialised Qwen3-0.6B-shaped BF16 model in %.1f s\n", seconds_since(t));
    row("Qwen3-0.6B shape (random)", *m, 128, steps);
  }
  {
    auto t = clock_type::now();
    auto m = taia::init_model(taia::bench::gemma3_1b_shape(), 1, taia::DType::BF16);
    std::fprintf(stderr, "initialised Gemma-3-1B-shaped BF16 model in %.1f s\n", seconds_since(t));
    row("Gemma-3-1B shape (random)", *m, 128, steps);
  }
  return 0;
}
