// Test tool: runs taia's training engine on one batch and writes what the PyTorch parity test
// compares: the initial LoRA weights, the gradients of the first backward pass, and the losses of
// N AdamW steps on the same batch.
//   train_probe MODEL_DIR SPEC.json OUT_DIR
// SPEC: {"method": "lora"|"molora"|"full", "experts": 4, "top_k": 1, "balance": 0 (MoLoRA), "targets": "all", "rank": 4, "alpha": 8, "rslora": false,
//        "rank_pattern": {}, "alpha_pattern": {}, "init_b_std": 0.1, "seed": 1, "B": 2, "L": 8,
//        "tokens": [...], "targets_ids": [...], "steps": 10, "lr": 1e-3, "weight_decay": 0.01,
//        "recompute": false, "micro_rows": [[0], [1]]}
// micro_rows: the batch's rows cut into micro-batches of one step (gradient accumulation with the
// trainer's token-mean weighting); absent: one micro-batch.
#include <cstdio>
#include <fstream>

#include "core/json_util.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/loader.h"
#include "model/peft_adapter.h"
#include "train/engine.h"
#include "train/trainable.h"
#include "train/optimizer.h"

using namespace taia;

namespace {

void save_lora(const LoraAdapter& a, const std::string& path, bool grads) {
  std::vector<TensorView> views;
  for (int64_t l = 0; l < int64_t(a.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const LoraModule* m = a.find(l, Proj(i))) {
        views.emplace_back(peft_key(l, Proj(i), "A", a.layout), DType::F32, std::vector<int64_t>{m->rank, m->in},
                           const_cast<float*>(grads ? m->dA.data() : m->A.data()));
        views.emplace_back(peft_key(l, Proj(i), "B", a.layout), DType::F32, std::vector<int64_t>{m->out, m->rank},
                           const_cast<float*>(grads ? m->dB.data() : m->B.data()));
      }
  // MoLoRA: each mixture's experts [E, r, in] / [E, out, r] and router.
  for (int64_t l = 0; l < int64_t(a.molora.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const MoloraModule* m = a.molora.find(l, Proj(i))) {
        auto add = [&](const char* tail, std::vector<int64_t> shape, const std::vector<float>& v,
                       const std::vector<float>& g) {
          views.emplace_back(molora_key(l, Proj(i), tail), DType::F32, std::move(shape),
                             const_cast<float*>(grads ? g.data() : v.data()));
        };
        add("experts.lora_A", {m->experts, m->rank, m->in}, m->A, m->dA);
        add("experts.lora_B", {m->experts, m->out, m->rank}, m->B, m->dB);
        add("router.weight", {m->experts, m->in}, m->router_w, m->d_router_w);
        add("router.bias", {m->experts}, m->router_b, m->d_router_b);
      }
  write_safetensors(path, views);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: train_probe MODEL_DIR SPEC.json OUT_DIR\n");
    return 2;
  }
  try {
    const std::string out = argv[3];
    Json spec = parse_json_file(argv[2]);
    LoadOptions lo;
    lo.linear_dtype = DType::F32;
    const bool full = spec.value("method", "lora") == "full";
    const bool molora = spec.value("method", "lora") == "molora";
    auto model = load_model(argv[1], full ? lo : LoadOptions{});
    const auto targets = parse_targets(spec.value("targets", "all"));
    LoraAdapter lora;
    FullGrads grads;
    if (full) {
      grads = make_full_grads(*model, targets);
    } else {
      LoraConfig cfg;
      cfg.rank = spec.value("rank", 4);
      cfg.alpha = spec.value("alpha", 8.0);
      cfg.dropout = 0.0;
      cfg.use_rslora = spec.value("rslora", false);
      cfg.targets = targets;
      MoloraConfig mc;
      if (molora) {  // experts on the FFN, LoRA on the rest
        mc.experts = spec.value("experts", 4);
        mc.top_k = spec.value("top_k", 1);
        mc.balance_coef = spec.value("balance", 0.0);
      }
      const Json rp = spec.value("rank_pattern", Json::object()), ap = spec.value("alpha_pattern", Json::object());
      for (auto it = rp.begin(); it != rp.end(); ++it) cfg.rank_pattern[it.key()] = it.value().get<int64_t>();
      for (auto it = ap.begin(); it != ap.end(); ++it) cfg.alpha_pattern[it.key()] = it.value().get<double>();
      lora = molora ? LoraAdapter::create_with_experts(model->config, cfg, mc, spec.value("seed", 1))
                    : LoraAdapter::create(model->config, cfg, spec.value("seed", 1));
      // B is zero in PEFT's init, which makes every dA zero: the parity test draws B too.
      Rng rng(spec.value("seed", 1) + 1000);
      const double bstd = spec.value("init_b_std", 0.0);
      for (auto& layer : lora.layers)
        for (auto& m : layer)
          if (m) for (float& b : m->B) b = float(bstd * rng.normal());
      for (auto& layer : lora.molora.layers)
        for (auto& m : layer)
          if (m) for (float& b : m->B) b = float(bstd * rng.normal());
      save_lora(lora, out + "/lora_init.safetensors", false);
    }
    EngineOptions eo;
    eo.recompute = spec.value("recompute", false);
    eo.compute_bf16 = spec.value("compute", "f32") == "bf16";
    TrainEngine engine(*model, full ? nullptr : &lora, full ? &grads : nullptr, eo);
    TrainBatch batch;
    batch.B = spec.at("B");
    batch.L = spec.at("L");
    batch.tokens = spec.at("tokens").get<std::vector<int32_t>>();
    batch.targets = spec.at("targets_ids").get<std::vector<int32_t>>();
    std::vector<TrainBatch> micro;
    for (const Json& rows : spec.value("micro_rows", Json::array({Json::array()}))) {
      if (rows.empty()) {
        micro.push_back(batch);
        continue;
      }
      TrainBatch m;
      m.B = int64_t(rows.size());
      m.L = batch.L;
      for (int64_t row : rows.get<std::vector<int64_t>>()) {
        m.tokens.insert(m.tokens.end(), batch.tokens.begin() + row * batch.L, batch.tokens.begin() + (row + 1) * batch.L);
        m.targets.insert(m.targets.end(), batch.targets.begin() + row * batch.L,
                         batch.targets.begin() + (row + 1) * batch.L);
      }
      micro.push_back(m);
    }
    const int64_t step_targets = batch.target_count();
    // The loss the trainer optimises: the mean cross-entropy over the step's target tokens plus,
    // with MoLoRA's balance loss, its coefficient times the routers' aux summed.
    auto step_loss = [&](uint64_t step) {
      engine.reset_router_stats();
      const double ce = accumulate_step_gradients(engine, micro, step_targets, step) / double(step_targets);
      return ce + lora.molora.config.balance_coef * engine.router_stats().balance_loss;
    };
    const double loss0 = step_loss(0);
    if (full) {
      std::vector<TensorView> views;
      for (auto& [name, g] : grads.by_name) views.emplace_back(name, DType::F32, model->find(name)->shape, g.data());
      write_safetensors(out + "/grads.safetensors", views);
    } else {
      save_lora(lora, out + "/grads.safetensors", true);
    }
    // N AdamW steps on the same batch (the gradients above are step 1's).
    std::vector<ParamRef> params = trainable_params(*model, full ? &grads : nullptr, full ? nullptr : &lora);
    AdamWConfig ac;
    ac.weight_decay = spec.value("weight_decay", 0.0);
    AdamW opt(params, ac);
    Json losses = Json::array({loss0});
    const int steps = spec.value("steps", 0);
    for (int s = 0; s < steps; ++s) {
      opt.step(spec.value("lr", 1e-3));
      if (full) grads.zero(); else lora.zero_grad();
      losses.push_back(step_loss(uint64_t(s + 1)));
    }
    std::ofstream(out + "/result.json") << Json{{"loss", loss0}, {"losses", losses}}.dump() << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
