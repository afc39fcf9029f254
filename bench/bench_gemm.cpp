// GEMM back-ends on the shapes taia runs: y[M,N] = x[M,K] W[N,K]^T (the linear layer).
// Compares oneDNN's dnnl_sgemm, OpenBLAS's cblas_sgemm, and taia's linear_forward with F32
// and BF16 weights. Counter GFLOP/s = 2*M*N*K / time.
//
//   ./build/bench/bench_gemm --benchmark_min_time=0.5
// OPENBLAS_CORETYPE is left as the environment sets it; say so when quoting numbers.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

namespace {

struct Shape { int64_t M, N, K; };
// The PyTorch peer's matmul shapes (../shared/peers/torch_lora_step.py) and Qwen2.5-0.5B's
// projections at prefill (M = 128 positions) and decode (M = 1).
const Shape kShapes[] = {
    {512, 2048, 2048}, {512, 5632, 2048}, {512, 2048, 5632}, {128, 896, 896}, {128, 4864, 896},
    {128, 896, 4864},  {128, 128, 896},   {1, 896, 896},     {1, 4864, 896},  {1, 896, 4864},
    {1, 151936, 896},  // the tied LM head at decode: 272 MB in BF16, far beyond cache
};

std::vector<float> random_floats(size_t n, uint64_t seed) {
  taia::Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform() - 0.5f;
  return v;
}

void set_flops(benchmark::State& state, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.counters["GB/s_weights"] = benchmark::Counter(4.0 * double(s.N) * double(s.K),
                                                      benchmark::Counter::kIsIterationInvariantRate,
                                                      benchmark::Counter::kIs1000);
}

void BM_onednn_sgemm(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  auto x = random_floats(size_t(s.M * s.K), 1), w = random_floats(size_t(s.N * s.K), 2);
  std::vector<float> y(size_t(s.M * s.N));
  for (auto _ : state) taia::sgemm(false, true, s.M, s.N, s.K, 1.0f, x.data(), s.K, w.data(), s.K, 0.0f, y.data(), s.N);
  set_flops(state, s);
  state.SetLabel(std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K));
}

void BM_openblas_sgemm(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  openblas_set_num_threads(omp_get_max_threads());
  auto x = random_floats(size_t(s.M * s.K), 1), w = random_floats(size_t(s.N * s.K), 2);
  std::vector<float> y(size_t(s.M * s.N));
  for (auto _ : state)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s.M), int(s.N), int(s.K), 1.0f, x.data(), int(s.K),
                w.data(), int(s.K), 0.0f, y.data(), int(s.N));
  set_flops(state, s);
  state.SetLabel(std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K));
}

template <taia::DType WT>
void BM_taia_linear(benchmark::State& state) {
  const Shape s = kShapes[state.range(0)];
  auto x = random_floats(size_t(s.M * s.K), 1), wf = random_floats(size_t(s.N * s.K), 2);
  std::vector<uint16_t> wb(wf.size());
  taia::convert_from_f32(wf.data(), taia::DType::BF16, wb.data(), wf.size());
  taia::TensorView w("w", WT, {s.N, s.K}, WT == taia::DType::F32 ? static_cast<void*>(wf.data()) : wb.data());
  std::vector<float> y(size_t(s.M * s.N));
  for (auto _ : state) taia::linear_forward(y.data(), x.data(), w, nullptr, s.M);
  set_flops(state, s);
  if (WT == taia::DType::BF16)
    state.counters["GB/s_weights"] = benchmark::Counter(2.0 * double(s.N) * double(s.K),
                                                        benchmark::Counter::kIsIterationInvariantRate,
                                                        benchmark::Counter::kIs1000);
  state.SetLabel(std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K));
}

void all_shapes(benchmark::internal::Benchmark* b) {
  for (int i = 0; i < int(sizeof(kShapes) / sizeof(kShapes[0])); ++i) b->Arg(i);
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_onednn_sgemm)->Apply(all_shapes);
BENCHMARK(BM_openblas_sgemm)->Apply(all_shapes);
BENCHMARK_TEMPLATE(BM_taia_linear, taia::DType::F32)->Apply(all_shapes);
BENCHMARK_TEMPLATE(BM_taia_linear, taia::DType::BF16)->Apply(all_shapes);

}  // namespace

BENCHMARK_MAIN();
