// LoRA training speed on the PyTorch peer's model (../shared/peers/torch_lora_step.py):
// LLaMA-style, vocab 8000, dim 512, 8 layers, 8 heads, SwiGLU 1376, untied head, batch 4 x 256,
// LoRA r=8 (alpha 16, no dropout) on all seven projections, base frozen, AdamW.
//   OMP_NUM_THREADS=2 ./build/bench/bench_train [trials] [f32|bf16]
// Prints medians for fwd+bwd and fwd+bwd+AdamW, tokens/s and matmul GFLOP/s computed with the
// peer's formula (2 x forward matmul FLOPs), so the two are directly comparable.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "model/init.h"
#include "perf/measure.h"
#include "perf/presets.h"
#include "train/engine.h"
#include "train/optimizer.h"
#include "train/trainable.h"

using namespace taia;

int main(int argc, char** argv) {
  const int trials = argc > 1 ? std::atoi(argv[1]) : 5;
  // f32: F32 base and compute; bf16: BF16 base weights, F32 compute; bf16c: BF16 base and BF16 GEMMs.
  const std::string mode = argc > 2 ? argv[2] : "f32";
  const DType dt = mode == "f32" ? DType::F32 : DType::BF16;
  const int64_t B = 4, T = 256, R = 8;
  const ModelConfig c = bench_preset_config("llama-34m");  // the peer's model
  auto model = init_model(c, 1, dt);
  LoraConfig lc;
  lc.rank = R;
  lc.alpha = 16;
  lc.dropout = 0;
  LoraAdapter lora = LoraAdapter::create(c, lc, 2);
  const std::vector<ParamRef> params = trainable_params(*model, nullptr, &lora);
  AdamW adam(params, AdamWConfig{});
  EngineOptions eo;
  eo.compute_bf16 = mode == "bf16c";
  eo.profile = true;  // a clock read per phase: ~1 us in a step of hundreds of ms
  TrainEngine engine(*model, &lora, nullptr, eo);
  const TrainBatch batch = random_train_batch(c.vocab_size, B, T);
  const float scale = 1.0f / float(batch.target_count());
  auto time_of = [&](bool with_opt) {
    const auto t0 = std::chrono::steady_clock::now();
    lora.zero_grad();
    engine.forward_backward(batch, scale, 0);
    if (with_opt) adam.step(1e-4);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < 2; ++i) time_of(true);  // warm-up
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> fb, fbo;
  engine.reset_phase_times();
  for (int i = 0; i < trials; ++i) fb.push_back(time_of(false));
  const PhaseTimes phases = engine.phase_times();
  for (int i = 0; i < trials; ++i) fbo.push_back(time_of(true));
  const double tok = double(B * T);
  TrainBenchOptions shape;
  shape.batch = B;
  shape.seq = T;
  shape.rank = R;
  const double flops = train_step_flops(c, shape);  // 2 x forward matmul FLOPs, the peer's formula
  std::printf("taia LoRA r=%lld, base %s, compute %s, batch %lldx%lld, threads %s\n", (long long)R, dtype_name(dt),
              eo.compute_bf16 ? "BF16 GEMMs" : "F32", (long long)B,
              (long long)T, std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "(all)");
  std::printf("train fwd+bwd: median=%.1f ms -> %.0f tokens/s, %.1f GFLOP/s (2x fwd matmul flops)\n",
              median(fb) * 1e3, tok / median(fb), flops / median(fb) / 1e9);
  std::printf("train fwd+bwd+AdamW: median=%.1f ms -> %.0f tokens/s\n", median(fbo) * 1e3, tok / median(fbo));
  // Mean time per fwd+bwd step in each phase (the rest: parallel-region starts, gradient zeroing).
  double mean_step = 0;
  for (double t : fb) mean_step += t / double(fb.size());
  std::printf("phases (mean ms per fwd+bwd of %.1f ms):", mean_step * 1e3);
  for (int p = 0; p < int(Phase::Count); ++p)
    std::printf("%s %s %.1f", p ? "," : "", phase_name(Phase(p)), phases.seconds[size_t(p)] / double(trials) * 1e3);
  std::printf("\n");
  return 0;
}
