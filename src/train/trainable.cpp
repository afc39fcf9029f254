#include "train/trainable.h"

#include "core/error.h"
#include "model/peft_adapter.h"
#include "model/tensor_names.h"

namespace taia {

FullGrads make_full_grads(const Model& model, const ModuleMask& targets) {
  const ModelConfig& c = model.config;
  bool all = true;
  for (bool t : targets) all = all && t;
  FullGrads g;
  auto add = [&](const std::string& name, const std::vector<int64_t>& shape) {
    g.by_name[name].assign(size_t(checked_numel(shape, name)), 0.0f);
  };
  if (all) {
    for (const ExpectedTensor& e : expected_tensors(c)) add(e.name, e.shape);
    return g;
  }
  check_fused_targets(targets, c.proj_layout(), "[train] --targets");
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      if (!targets[size_t(i)] || module_slot(p, c.proj_layout()) != p) continue;  // a fused tensor once
      const auto [in, out] = module_shape(c, p);
      add(proj_tensor_name(l, p, "weight", c.proj_layout()), {out, in});
      if (proj_has_bias(c, p)) add(proj_tensor_name(l, p, "bias", c.proj_layout()), {out});
    }
  return g;
}

std::vector<ParamRef> trainable_params(Model& model, FullGrads* grads, LoraAdapter* lora) {
  std::vector<ParamRef> params;
  if (grads) {
    for (auto& [name, g] : grads->by_name) {
      TensorView* t = model.find(name);
      TAIA_CHECK(t != nullptr, "[train] no model tensor '", name, "' for a trainable parameter");
      const bool decay = name.find("norm") == std::string::npos && name.find(".bias") == std::string::npos;
      params.push_back({name, t->ptr<float>(), g.data(), g.size(), decay, hf_tensor_layer(name)});
    }
  }
  if (lora) {
    for (int64_t l = 0; l < int64_t(lora->layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (LoraModule* m = lora->find(l, Proj(i))) {
          params.push_back({peft_key(l, Proj(i), "A", lora->layout), m->A.data(), m->dA.data(), m->A.size(), true, l});
          params.push_back({peft_key(l, Proj(i), "B", lora->layout), m->B.data(), m->dB.data(), m->B.size(), true, l});
        }
    // MoLoRA: each mixture's experts (all E at once) and router; the router's bias without weight
    // decay (HF Trainer's rule for biases).
    for (int64_t l = 0; l < int64_t(lora->molora.layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (MoloraModule* m = lora->molora.find(l, Proj(i))) {
          const Proj p = Proj(i);
          params.push_back({molora_key(l, p, "experts.lora_A"), m->A.data(), m->dA.data(), m->A.size(), true, l});
          params.push_back({molora_key(l, p, "experts.lora_B"), m->B.data(), m->dB.data(), m->B.size(), true, l});
          params.push_back({molora_key(l, p, "router.weight"), m->router_w.data(), m->d_router_w.data(),
                            m->router_w.size(), true, l});
          params.push_back({molora_key(l, p, "router.bias"), m->router_b.data(), m->d_router_b.data(),
                            m->router_b.size(), false, l});
        }
  }
  return params;
}

}  // namespace taia
