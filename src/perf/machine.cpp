#include "perf/machine.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm.h"

namespace taia {
namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One pass over a[n] (n a multiple of 64) by the whole team; the sum keeps the reads alive.
double read_pass(const float* a, size_t n, size_t prefetch_floats) {
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
  return total;
}

}  // namespace

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "?";
}

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
      const auto t = clock_type::now();
      sink = sink + read_pass(a, n, prefetch_floats);
      rates.push_back(double(n * sizeof(float)) / seconds_since(t) / 1e9);
    }
    best = std::max(best, median(rates));
  }
  std::free(a);
  return best;
}

double gemm_peak_gflops(Precision precision) {
  const int64_t n = 1024;
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), c(size_t(n * n));
  std::vector<uint16_t> a16(a.size()), b16(b.size());
  convert_from_f32(a.data(), DType::BF16, a16.data(), a.size());
  convert_from_f32(b.data(), DType::BF16, b16.data(), b.size());
  // The best of at least 6 products and 0.5 s: a product takes 5-10 ms, and on a shared VM a few
  // tens of ms of stolen time once covered all 6 (a BF16 ceiling read at half its value).
  double best = 0;
  const auto start = clock_type::now();
  for (int rep = 0; rep < 6 || seconds_since(start) < 0.5; ++rep) {  // the first runs create the primitive
    const auto t = clock_type::now();
    if (precision == Precision::F32)
      gemm_f32(n, n, n, a.data(), n, b.data(), n, /*b_is_nk=*/true, c.data(), n, false);
    else
      gemm_bf16(n, n, n, a16.data(), n, b16.data(), n, /*b_is_nk=*/true, c.data(), n, false);
    best = std::max(best, 2.0 * double(n * n * n) / seconds_since(t) / 1e9);
  }
  return best;
}

}  // namespace taia
