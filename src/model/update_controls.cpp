#include "model/update_controls.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"

namespace taia {
namespace {

// ||B A||_F^2 = trace((B^T B)(A A^T)): two [rank, rank] Gram matrices, no [out, in] product.
double lora_norm2(const LoraModule& m) {
  const auto r = size_t(m.rank);
  std::vector<double> btb(r * r, 0.0), aat(r * r, 0.0);  // [rank, rank] each
  for (int64_t o = 0; o < m.out; ++o)
    for (size_t i = 0; i < r; ++i)
      for (size_t j = 0; j < r; ++j)
        btb[i * r + j] += double(m.B[size_t(o) * r + i]) * double(m.B[size_t(o) * r + j]);
  for (size_t i = 0; i < r; ++i)
    for (size_t j = 0; j < r; ++j) {
      double s = 0;
      for (int64_t k = 0; k < m.in; ++k) s += double(m.A[i * size_t(m.in) + size_t(k)]) * double(m.A[j * size_t(m.in) + size_t(k)]);
      aat[i * r + j] = s;
    }
  double t = 0;
  for (size_t i = 0; i < r * r; ++i) t += btb[i] * aat[i];  // both symmetric: sum_ij G_ij H_ji
  return double(m.scale) * double(m.scale) * t;
}

// The projection tensors (weight, bias) a full update of slot p in layer l holds.
std::vector<std::string> slot_tensors(const ModelConfig& c, int64_t layer, Proj p) {
  std::vector<std::string> names{proj_tensor_name(layer, p, "weight", c.proj_layout())};
  if (proj_has_bias(c, p)) names.push_back(proj_tensor_name(layer, p, "bias", c.proj_layout()));
  return names;
}

template <typename Fn>  // fn(layer, slot) for every module slot of the config's layout
void for_each_slot(const ModelConfig& c, Fn fn) {
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (module_slot(Proj(i), c.proj_layout()) == Proj(i)) fn(l, Proj(i));
}

std::pair<const TensorView*, const TensorView*> tensor_pair(const Model& ft, const Model& base, const std::string& name) {
  const TensorView* a = const_cast<Model&>(ft).find(name);
  const TensorView* b = const_cast<Model&>(base).find(name);
  TAIA_CHECK(a && b && a->shape == b->shape, "[controls] tensor '", name, "' is missing or differs in shape between "
             "the fine-tuned and the base model");
  TAIA_CHECK(!is_block_dtype(a->dtype) && !is_block_dtype(b->dtype), "[controls] tensor '", name, "' is quantized (",
             dtype_name(a->dtype), " / ", dtype_name(b->dtype), "): load the models dequantized (--dtype f32 or bf16)");
  return {a, b};
}

std::vector<float> as_f32(const TensorView& t) {
  std::vector<float> v(size_t(t.numel()));
  convert_to_f32(t.dtype, t.data, v.data(), v.size());
  return v;
}

// random-half-N: the trained modules in the order of a seeded Fisher-Yates shuffle, each taken
// when it still fits under the attention set's parameter count.
ModuleWeights random_half(const UpdateSizes& sizes, uint64_t draw) {
  std::vector<std::pair<size_t, int>> modules;  // (layer, slot) of every trained module
  int64_t target = 0;
  for (size_t l = 0; l < sizes.size(); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const auto& m = sizes[l][size_t(i)]) {
        modules.push_back({l, i});
        if (proj_is_attention(Proj(i))) target += m->params;
      }
  Rng rng(0x7a1a0000u + draw);
  for (size_t i = modules.size(); i > 1; --i) std::swap(modules[i - 1], modules[size_t(rng.next_u64() % i)]);
  ModuleWeights w(sizes.size(), std::array<double, kNumProj>{});
  int64_t kept = 0;
  for (const auto& [l, i] : modules) {
    const int64_t p = sizes[l][size_t(i)]->params;
    if (kept + p > target) continue;
    kept += p;
    w[l][size_t(i)] = 1.0;
  }
  return w;
}

// scaled: every module of layer l times sqrt(attention norm^2 / all norm^2) of that layer.
ModuleWeights scaled(const UpdateSizes& sizes) {
  ModuleWeights w(sizes.size(), std::array<double, kNumProj>{});
  for (size_t l = 0; l < sizes.size(); ++l) {
    double attention = 0, all = 0;
    for (int i = 0; i < kNumProj; ++i)
      if (const auto& m = sizes[l][size_t(i)]) {
        all += m->norm2;
        if (proj_is_attention(Proj(i))) attention += m->norm2;
      }
    const double f = all > 0 ? std::sqrt(attention / all) : 1.0;  // no update in the layer: nothing to scale
    for (int i = 0; i < kNumProj; ++i)
      if (sizes[l][size_t(i)]) w[l][size_t(i)] = f;
  }
  return w;
}

}  // namespace

UpdateSizes lora_update_sizes(const LoraAdapter& a) {
  UpdateSizes sizes(a.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const auto& m = a.layers[l][size_t(i)]) sizes[l][size_t(i)] = ModuleUpdate{m->rank * (m->in + m->out), lora_norm2(*m)};
  return sizes;
}

UpdateSizes full_update_sizes(const Model& ft, const Model& base) {
  TAIA_CHECK(ft.config.num_layers == base.config.num_layers && ft.config.proj_layout() == base.config.proj_layout(),
             "[controls] the fine-tuned and the base model have different layers");
  UpdateSizes sizes(size_t(ft.config.num_layers));
  for_each_slot(ft.config, [&](int64_t l, Proj p) {
    ModuleUpdate u;
    for (const std::string& name : slot_tensors(ft.config, l, p)) {
      const auto [f, b] = tensor_pair(ft, base, name);
      const std::vector<float> fv = as_f32(*f), bv = as_f32(*b);
      for (size_t k = 0; k < fv.size(); ++k) u.norm2 += (double(fv[k]) - double(bv[k])) * (double(fv[k]) - double(bv[k]));
      u.params += f->numel();
    }
    sizes[size_t(l)][size_t(p)] = u;
  });
  return sizes;
}

ModuleWeights mode_weights(const ModeSpec& mode, const UpdateSizes& sizes) {
  switch (mode.control) {
    case UpdateControl::RandomHalf: return random_half(sizes, mode.draw);
    case UpdateControl::Scaled: return scaled(sizes);
    case UpdateControl::None: break;
  }
  ModuleWeights w(sizes.size(), std::array<double, kNumProj>{});
  for (size_t l = 0; l < sizes.size(); ++l)
    for (int i = 0; i < kNumProj; ++i) w[l][size_t(i)] = mode.mask[size_t(i)] ? 1.0 : 0.0;
  return w;
}

Json describe_mode_weights(const UpdateSizes& sizes, const ModuleWeights& w, ProjLayout layout) {
  TAIA_CHECK(w.size() == sizes.size(), "[controls] expected weights for ", sizes.size(), " layers, got ", w.size());
  int64_t params = 0, attention_params = 0;
  double norm2 = 0, attention_norm2 = 0;
  Json modules = Json::array(), factors = Json::array();
  for (size_t l = 0; l < sizes.size(); ++l) {
    double factor = 0;
    for (int i = 0; i < kNumProj; ++i) {
      const auto& m = sizes[l][size_t(i)];
      if (!m) continue;
      const double wi = w[l][size_t(i)];
      if (proj_is_attention(Proj(i))) {
        attention_params += m->params;
        attention_norm2 += m->norm2;
      }
      if (wi == 0) continue;
      params += m->params;
      norm2 += wi * wi * m->norm2;
      factor = std::max(factor, wi);
      modules.push_back(module_name(int64_t(l), Proj(i), layout));
    }
    factors.push_back(factor);
  }
  return Json{{"parameters", params}, {"norm", std::sqrt(norm2)}, {"attention_parameters", attention_params},
              {"attention_norm", std::sqrt(attention_norm2)}, {"modules", modules}, {"layer_factors", factors}};
}

LoraAdapter weighted_adapter(const LoraAdapter& adapter, const ModuleWeights& w) {
  TAIA_CHECK(!adapter.has_experts(parse_targets("all")), "[controls] the adapter has MoLoRA experts on ",
             targets_to_string(adapter.molora.config.targets),
             ": random-half and scaled are defined on LoRA modules; run base, vanilla, taia, taif or a module list");
  TAIA_CHECK(w.size() == adapter.layers.size(), "[controls] expected weights for ", adapter.layers.size(),
             " layers, got ", w.size());
  LoraAdapter out = adapter;
  bool dropped = false;
  std::string kept;  // the kept modules' names as a PEFT target_modules regex (full match)
  for (size_t l = 0; l < out.layers.size(); ++l)
    for (int i = 0; i < kNumProj; ++i) {
      auto& m = out.layers[l][size_t(i)];
      const double wi = w[l][size_t(i)];
      if (!m) continue;
      if (wi == 0.0) {
        m.reset();
        dropped = true;
        continue;
      }
      std::string name = out.module_name(int64_t(l), Proj(i));
      for (size_t k = name.find('.'); k != std::string::npos; k = name.find('.', k + 2)) name.insert(k, "\\");
      kept += (kept.empty() ? "" : "|") + name;
      if (wi == 1.0) continue;
      for (float& b : m->B) b = float(double(b) * wi);
      m->dA.clear();
      m->dB.clear();
    }
  // Saved as a PEFT folder, an adapter with modules left out of some layers names exactly the
  // ones it has (its targets alone would ask for the dropped ones too).
  if (dropped) out.config.target_regex = kept.empty() ? "(?!)" : kept;
  return out;
}

ModeAdapter adapter_for_mode(const LoraAdapter* adapter, const ModeSpec& mode, const char* where, const char* how) {
  TAIA_CHECK(!mode.any() || adapter, where, " mode '", mode.name, "' needs an adapter", how);
  if (mode.control == UpdateControl::None) return ModeAdapter{adapter, mode.mask, nullptr};
  auto derived = std::make_shared<const LoraAdapter>(
      weighted_adapter(*adapter, mode_weights(mode, lora_update_sizes(*adapter))));
  return ModeAdapter{derived.get(), parse_targets("all"), derived};
}

ModuleMask apply_mode_in_place(LoraAdapter& adapter, const ModeSpec& mode) {
  if (mode.control == UpdateControl::None) return mode.mask;
  adapter = weighted_adapter(adapter, mode_weights(mode, lora_update_sizes(adapter)));
  return parse_targets("all");
}

void merge_full_weighted(Model& ft, const Model& base, const ModuleWeights& w) {
  TAIA_CHECK(int64_t(w.size()) == ft.config.num_layers, "[controls] expected weights for ", ft.config.num_layers,
             " layers, got ", w.size());
  for_each_slot(ft.config, [&](int64_t l, Proj p) {
    const double wi = w[size_t(l)][size_t(p)];
    if (wi == 1.0) return;
    for (const std::string& name : slot_tensors(ft.config, l, p)) {
      tensor_pair(ft, base, name);  // checks
      TensorView* dst = ft.find(name);
      const std::vector<float> bv = as_f32(*const_cast<Model&>(base).find(name));
      std::vector<float> fv = as_f32(*dst);
      for (size_t k = 0; k < fv.size(); ++k)
        fv[k] = wi == 0.0 ? bv[k] : float(double(bv[k]) + wi * (double(fv[k]) - double(bv[k])));
      convert_from_f32(fv.data(), dst->dtype, dst->data, fv.size());
    }
  });
  ft.packed->clear();  // repacked copies of the tensors just written are stale
}

}  // namespace taia
