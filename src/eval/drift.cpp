#include "eval/drift.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "model/decoder.h"
#include "model/kv_cache.h"

namespace taia {

double SublayerDrift::relative_change() const { return base_sq > 0 ? std::sqrt(diff_sq / base_sq) : 0.0; }
double SublayerDrift::mean_cosine() const { return tokens > 0 ? cosine_sum / double(tokens) : 1.0; }

namespace {

// Index of a sub-layer's output in a per-layer table: 0 attention (o_proj), 1 FFN (down_proj).
int sublayer_index(Proj p) { return p == Proj::O ? 0 : 1; }

// Runs ids through `d`, handing every sub-layer output [T, D] to `seen`.
void run_observed(Decoder& d, const std::vector<int32_t>& ids, const Decoder::SublayerObserver& seen) {
  const Model& m = d.model();
  d.observe_sublayers(seen);
  KVCache cache(m.config, int64_t(ids.size()));
  std::vector<float> logits(size_t(m.config.vocab_size));
  d.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), false);
  d.observe_sublayers(nullptr);
}

}  // namespace

std::vector<LayerDrift> measure_drift(const Model& base, const Model* finetuned, const LoraAdapter* adapter,
                                      const ModuleMask& mask, const std::vector<std::vector<int32_t>>& sequences) {
  TAIA_CHECK(adapter || finetuned, "[analyze] expected an adapter or a fine-tuned model");
  const ModelConfig& c = base.config;
  TAIA_CHECK(!finetuned || (finetuned->config.num_layers == c.num_layers && finetuned->config.hidden_size ==
                            c.hidden_size && finetuned->config.vocab_size == c.vocab_size),
             "[analyze] the fine-tuned model's shape (layers, hidden size, vocabulary) is not the base's");
  const int64_t D = c.hidden_size;
  std::vector<LayerDrift> drift(size_t(c.num_layers));
  Decoder base_run(base);
  Decoder tuned_run(finetuned ? *finetuned : base);
  if (!finetuned) tuned_run.set_adapter(adapter, mask);
  std::vector<std::vector<float>> base_out(size_t(2 * c.num_layers));  // [layer * 2 + sublayer][T, D]
  for (const std::vector<int32_t>& ids : sequences) {
    if (ids.empty()) continue;
    for (int32_t id : ids)
      TAIA_CHECK(id >= 0 && id < c.vocab_size, "[analyze] token id ", id, " is outside the vocabulary");
    run_observed(base_run, ids, [&](int64_t l, Proj p, const float* out, int64_t T) {
      base_out[size_t(2 * l + sublayer_index(p))].assign(out, out + T * D);
    });
    run_observed(tuned_run, ids, [&](int64_t l, Proj p, const float* out, int64_t T) {
      const std::vector<float>& b = base_out[size_t(2 * l + sublayer_index(p))];
      SublayerDrift& s = sublayer_index(p) == 0 ? drift[size_t(l)].attention : drift[size_t(l)].ffn;
      for (int64_t t = 0; t < T; ++t) {
        double dd = 0, bb = 0, ff = 0, bf = 0;
        for (int64_t i = 0; i < D; ++i) {
          const double x = b[size_t(t * D + i)], y = out[t * D + i];
          dd += (y - x) * (y - x);
          bb += x * x;
          ff += y * y;
          bf += x * y;
        }
        s.diff_sq += dd;
        s.base_sq += bb;
        s.cosine_sum += bb > 0 && ff > 0 ? bf / std::sqrt(bb * ff) : (bb == ff ? 1.0 : 0.0);
        s.tokens += 1;
      }
    });
  }
  return drift;
}

std::vector<NeuronDrift> measure_neuron_drift(const Model& base, const Model* finetuned, const LoraAdapter* adapter,
                                              const ModuleMask& mask, const std::vector<std::vector<int32_t>>& sequences) {
  TAIA_CHECK(adapter || finetuned, "[analyze] expected an adapter or a fine-tuned model");
  const ModelConfig& c = base.config;
  TAIA_CHECK(!finetuned || (finetuned->config.num_layers == c.num_layers &&
                            finetuned->config.intermediate_size == c.intermediate_size),
             "[analyze] the fine-tuned model's shape (layers, FFN width) is not the base's");
  std::vector<NeuronDrift> drift(size_t(c.num_layers));
  Decoder base_run(base);
  Decoder tuned_run(finetuned ? *finetuned : base);
  if (!finetuned) tuned_run.set_adapter(adapter, mask);
  std::vector<std::vector<float>> base_hidden(size_t(c.num_layers));  // [layer][T, I]
  auto run = [](Decoder& d, const std::vector<int32_t>& ids, const Decoder::FfnHiddenObserver& seen) {
    d.observe_ffn_hidden(seen);
    KVCache cache(d.model().config, int64_t(ids.size()));
    std::vector<float> logits(size_t(d.model().config.vocab_size));
    d.forward(cache, ids.data(), int64_t(ids.size()), logits.data(), false);
    d.observe_ffn_hidden(nullptr);
  };
  for (const std::vector<int32_t>& ids : sequences) {
    if (ids.empty()) continue;
    for (int32_t id : ids)
      TAIA_CHECK(id >= 0 && id < c.vocab_size, "[analyze] token id ", id, " is outside the vocabulary");
    run(base_run, ids, [&](int64_t l, const float* h, int64_t T, int64_t I) {
      base_hidden[size_t(l)].assign(h, h + T * I);
    });
    run(tuned_run, ids, [&](int64_t l, const float* h, int64_t T, int64_t I) {
      NeuronDrift& n = drift[size_t(l)];
      n.diff_sq.resize(size_t(I), 0.0);
      n.base_sq.resize(size_t(I), 0.0);
      const std::vector<float>& b = base_hidden[size_t(l)];
      TAIA_CHECK(b.size() == size_t(T * I), "[analyze] layer ", l, ": FFN width differs between the two runs");
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < I; ++i) {
          const double x = b[size_t(t * I + i)], y = h[t * I + i];
          n.diff_sq[size_t(i)] += (y - x) * (y - x);
          n.base_sq[size_t(i)] += x * x;
        }
      n.tokens += T;
    });
  }
  return drift;
}

Json neurons_json(const std::vector<NeuronDrift>& layers, int64_t top) {
  Json out = Json::array();
  int64_t tokens = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const NeuronDrift& n = layers[l];
    tokens = n.tokens;
    const double per_token = n.tokens > 0 ? 1.0 / double(n.tokens) : 0.0;
    std::vector<size_t> order(n.diff_sq.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const size_t k = std::min(order.size(), size_t(std::max<int64_t>(top, 0)));
    std::partial_sort(order.begin(), order.begin() + int64_t(k), order.end(), [&](size_t a, size_t b) {
      return n.diff_sq[a] != n.diff_sq[b] ? n.diff_sq[a] > n.diff_sq[b] : a < b;
    });
    double total = 0, top_sum = 0;
    for (double d : n.diff_sq) total += d;
    Json neurons = Json::array();
    for (size_t j = 0; j < k; ++j) {
      const size_t i = order[j];
      top_sum += n.diff_sq[i];
      neurons.push_back({{"neuron", int64_t(i)}, {"rms_change", std::sqrt(n.diff_sq[i] * per_token)},
                         {"base_rms", std::sqrt(n.base_sq[i] * per_token)}});
    }
    out.push_back({{"layer", int64_t(l)},
                   {"rms_change", n.diff_sq.empty() ? 0.0 : std::sqrt(total * per_token / double(n.diff_sq.size()))},
                   {"top_share", total > 0 ? top_sum / total : 0.0},
                   {"neurons", neurons}});
  }
  return {{"layers", out}, {"tokens", tokens}};
}

Json weight_update_norms(const Model& base, const Model& finetuned) {
  const ModelConfig& c = base.config;
  const ProjLayout layout = c.proj_layout();
  Json modules = Json::array();
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      if (module_slot(p, layout) != p) continue;  // a fused group once
      const TensorView& wb = layer_proj(base.weights.layers[size_t(l)], p).weight;
      const TensorView& wf = layer_proj(finetuned.weights.layers[size_t(l)], p).weight;
      TAIA_CHECK(wb.shape == wf.shape, "[analyze] ", module_name(l, p, layout), " is ", wf.shape_string(),
                 " in the fine-tuned model but ", wb.shape_string(), " in the base");
      const int64_t rows = wb.shape[0], cols = wb.shape[1];
      std::vector<float> rb(static_cast<size_t>(cols)), rf(static_cast<size_t>(cols));
      double dd = 0, bb = 0;
      for (int64_t r = 0; r < rows; ++r) {
        convert_to_f32(wb.dtype, static_cast<const char*>(wb.data) + dtype_bytes(wb.dtype, r * cols), rb.data(),
                       rb.size());
        convert_to_f32(wf.dtype, static_cast<const char*>(wf.data) + dtype_bytes(wf.dtype, r * cols), rf.data(),
                       rf.size());
        for (int64_t k = 0; k < cols; ++k) {
          dd += (double(rf[size_t(k)]) - rb[size_t(k)]) * (double(rf[size_t(k)]) - rb[size_t(k)]);
          bb += double(rb[size_t(k)]) * rb[size_t(k)];
        }
      }
      modules.push_back({{"module", module_name(l, p, layout)}, {"layer", l}, {"update_norm", std::sqrt(dd)},
                         {"relative_update_norm", bb > 0 ? std::sqrt(dd / bb) : 0.0}});
    }
  return modules;
}

Json drift_json(const std::vector<LayerDrift>& layers) {
  Json out = Json::array();
  int64_t tokens = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    auto one = [](const SublayerDrift& s) {
      return Json{{"relative_change", s.relative_change()}, {"mean_cosine", s.mean_cosine()}};
    };
    out.push_back({{"layer", int64_t(l)}, {"attention", one(layers[l].attention)}, {"ffn", one(layers[l].ffn)}});
    tokens = layers[l].attention.tokens;
  }
  return {{"layers", out}, {"tokens", tokens}};
}

}  // namespace taia
