#include "model/merge.h"

#include <cstring>

#include "core/error.h"

namespace taia {

void merge_adapter(Model& model, const LoraAdapter& a, const ModuleMask& mask) {
  const ModelConfig& c = model.config;
  TAIA_CHECK(int64_t(a.layers.size()) == c.num_layers, "[merge] the adapter has ", a.layers.size(),
             " layers, the model ", c.num_layers);
  TAIA_CHECK(a.layout == c.proj_layout(), "[merge] the adapter's module layout (fused or split) is not the model's");
  check_fused_targets(mask, a.layout, "[merge] modules");
  TAIA_CHECK(!a.has_experts(mask), "[merge] the adapter's MoLoRA experts on ", targets_to_string(a.molora.config.targets),
             " cannot be merged into dense weights: each token picks its own experts. Merge the TAIA part (--mode taia: "
             "the attention LoRA) or run vanilla / taif unmerged (generate, eval and forward take --adapter and --mode)");
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      const LoraModule* m = a.find(l, p);
      if (!m || !mask[size_t(i)]) continue;
      TensorView* w = model.find(a.module_name(l, p) + ".weight");  // a fused module: the fused tensor
      TAIA_CHECK(w && w->shape == std::vector<int64_t>({m->out, m->in}), "[merge] ", a.module_name(l, p),
                 " has another shape in the model than in the adapter");
      TAIA_CHECK(!is_block_dtype(w->dtype), "[merge] ", a.module_name(l, p), " is ", dtype_name(w->dtype),
                 ": merging into a quantized weight would re-quantize it, which taia does not do; run the adapter "
                 "unmerged, or load the base dequantized (--dtype f32 or bf16)");
      std::vector<float> row(size_t(m->in));
      for (int64_t o = 0; o < m->out; ++o) {
        char* dst = static_cast<char*>(w->data) + size_t(o) * dtype_bytes(w->dtype, m->in);
        convert_to_f32(w->dtype, dst, row.data(), row.size());
        for (int64_t k = 0; k < m->in; ++k) {
          double delta = 0;
          for (int64_t r = 0; r < m->rank; ++r)
            delta += double(m->B[size_t(o * m->rank + r)]) * double(m->A[size_t(r * m->in + k)]);
          row[size_t(k)] = float(double(row[size_t(k)]) + double(m->scale) * delta);
        }
        convert_from_f32(row.data(), w->dtype, dst, row.size());
      }
    }
}

RevertSet parse_revert(const std::string& list) {
  RevertSet r;
  size_t start = 0;
  while (start < list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    const std::string item = list.substr(start, comma - start);
    if (item == "embeddings") r.embeddings = true;
    else if (item == "norms") r.norms = true;
    else if (item == "lm_head") r.lm_head = true;
    else fail("[merge] --revert expected embeddings, norms, lm_head, got '", item, "'");
    start = comma + 1;
  }
  return r;
}

std::vector<std::pair<std::string, std::string>> merge_full(Model& ft, const Model& base, const ModuleMask& mask,
                                                           const RevertSet& revert) {
  TAIA_CHECK(ft.config.parameter_count() == base.config.parameter_count() &&
                 ft.config.num_layers == base.config.num_layers && ft.config.hidden_size == base.config.hidden_size,
             "[merge] the fine-tuned and the base model have different shapes");
  std::vector<std::pair<std::string, std::string>> provenance;
  for (const ExpectedTensor& e : expected_tensors(ft.config)) {
    bool from_base = false;
    if (e.name == kEmbedTensor) from_base = revert.embeddings;
    else if (e.name == kLmHeadTensor) from_base = revert.lm_head;
    else if (e.name.find("norm") != std::string::npos) from_base = revert.norms;
    else if (const auto p = proj_of_tensor(e.name))  // a fused tensor by its group's first projection
      from_base = !mask[size_t(*p)];
    if (from_base) {
      TensorView* dst = ft.find(e.name);
      const TensorView* src = const_cast<Model&>(base).find(e.name);
      TAIA_CHECK(dst && src && dst->shape == src->shape, "[merge] tensor '", e.name, "' differs in shape");
      if (dst->dtype == src->dtype) {
        std::memcpy(dst->data, src->data, dst->nbytes());
      } else {
        std::vector<float> tmp(size_t(src->numel()));
        convert_to_f32(src->dtype, src->data, tmp.data(), tmp.size());
        convert_from_f32(tmp.data(), dst->dtype, dst->data, tmp.size());
      }
    }
    provenance.emplace_back(e.name, from_base ? "base" : "finetuned");
  }
  ft.packed->clear();  // repacked copies of the tensors just written are stale
  return provenance;
}

}  // namespace taia
