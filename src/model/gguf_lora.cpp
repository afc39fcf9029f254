#include "model/gguf_lora.h"

#include "core/error.h"
#include "core/ggml_quants.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/loader.h"
#include "io/gguf_keys.h"

#include <cstring>
#include <map>

namespace taia {
namespace {

// "blk.3.attn_q.weight.lora_a"; a fused module's: "blk.3.attn_qkv.weight.lora_a".
std::string tensor_name(int64_t l, Proj p, const char* ab, ProjLayout layout) {
  return gguf_proj_tensor_name(l, p, std::string(".weight.lora_") + ab, layout);
}

// HF row order -> llama.cpp's (pairs interleaved), the inverse of unpermute_qk_rows.
void permute_qk_rows(float* rows, int64_t n_heads, int64_t head_dim, int64_t row_len) {
  const int64_t half = head_dim / 2;
  std::vector<float> tmp(size_t(head_dim * row_len));
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = rows + h * head_dim * row_len;
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::copy(head + (j * half + i) * row_len, head + (j * half + i + 1) * row_len,
                  tmp.begin() + (2 * i + j) * row_len);
    std::copy(tmp.begin(), tmp.end(), head);
  }
}

int64_t heads_of(const ModelConfig& c, Proj p) { return p == Proj::Q ? c.num_heads : c.num_kv_heads; }

// The config of a loaded GGUF LoRA, stated so that PEFT's alpha / r reproduces every module's
// scale (a PEFT export of it must not fall back to PEFT's default alpha): r and lora_alpha from
// the first module, rank_pattern (and, without adapter.lora.alpha, alpha_pattern: llama.cpp then
// uses scale 1) for modules of other ranks.
void describe_scales(LoraAdapter& a, double alpha) {
  bool first = true;
  for (int64_t l = 0; l < int64_t(a.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const LoraModule* m = a.find(l, Proj(i));
      if (!m) continue;
      if (first) {
        a.config.rank = m->rank;
        a.config.alpha = alpha != 0 ? alpha : double(m->rank);
        first = false;
      } else if (m->rank != a.config.rank) {
        a.config.rank_pattern[a.module_name(l, Proj(i))] = m->rank;
        if (alpha == 0) a.config.alpha_pattern[a.module_name(l, Proj(i))] = double(m->rank);
      }
    }
}

}  // namespace

void save_gguf_lora(const LoraAdapter& a, const ModuleMask& mask, const ModelConfig& c, const std::string& path) {
  TAIA_CHECK(!a.has_experts(mask), "[export] a GGUF LoRA file holds plain LoRA modules; the adapter's MoLoRA experts on ",
             targets_to_string(a.molora.config.targets), " have no GGUF form (llama.cpp has no per-token LoRA "
             "routing). Export the TAIA part (--mode taia)");
  GgufWriter w;
  w.add_string(gguf_key(GgufKey::GeneralArchitecture), arch_gguf_name(c.arch, "[export] a GGUF LoRA file"));
  w.add_string(gguf_key(GgufKey::GeneralType), "adapter");
  w.add_string(gguf_key(GgufKey::AdapterType), "lora");
  w.add_f32(gguf_key(GgufKey::AdapterLoraAlpha), 1.0f);
  const bool permute = arch_profile(c.arch).gguf_permutes_qk;
  TAIA_CHECK(a.layout == c.proj_layout(), path, ": the adapter's module layout (fused or split) is not the model's");
  check_fused_targets(mask, a.layout, "[export gguf-lora] modules");
  for (int64_t l = 0; l < int64_t(a.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      const LoraModule* m = a.find(l, p);
      if (!m || !mask[size_t(i)]) continue;
      // llama.cpp applies (alpha / rank) * B A with alpha = 1: fold scale * rank into B.
      std::vector<float> b(m->B);
      const float k = m->scale * float(m->rank);
      for (float& v : b) v *= k;
      if (permute && (p == Proj::Q || p == Proj::K)) permute_qk_rows(b.data(), heads_of(c, p), c.head_dim, m->rank);
      w.add_tensor_f32(tensor_name(l, p, "a", a.layout), {m->in, m->rank}, m->A.data());
      w.add_tensor_f32(tensor_name(l, p, "b", a.layout), {m->rank, m->out}, b.data());
    }
  w.write(path);
}

LoraAdapter load_gguf_lora(const std::string& path, const ModelConfig& c) {
  GgufFile g(path);
  TAIA_CHECK(g.get_string(gguf_key(GgufKey::GeneralType)) == "adapter" && g.get_string(gguf_key(GgufKey::AdapterType)) == "lora", path,
             ": expected a GGUF LoRA adapter (general.type adapter, adapter.type lora)");
  const std::string arch = g.get_string(gguf_key(GgufKey::GeneralArchitecture));
  const std::string model_arch = arch_gguf_name(c.arch, path + ": a GGUF LoRA file");
  TAIA_CHECK(arch == model_arch, path, ": adapter architecture '", arch, "' does not match the model's '", model_arch,
             "'");
  const double alpha = g.get_float_or(gguf_key(GgufKey::AdapterLoraAlpha), 0.0);
  LoraAdapter a;
  a.config.dropout = 0;
  a.config.targets.fill(false);
  a.layout = c.proj_layout();
  a.layers.resize(size_t(c.num_layers));
  size_t used = 0;
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const Proj p = Proj(i);
      if (module_slot(p, a.layout) != p) continue;  // inside a fused module (attn_qkv, ffn_up)
      const GgufTensor* ta = g.find_tensor(tensor_name(l, p, "a", a.layout));
      const GgufTensor* tb = g.find_tensor(tensor_name(l, p, "b", a.layout));
      if (!ta && !tb) continue;
      TAIA_CHECK(ta && tb, path, ": ", tensor_name(l, p, ta ? "b" : "a", a.layout), " is missing");
      const auto [in, out] = module_shape(c, p);
      TAIA_CHECK(ta->ne.size() == 2 && tb->ne.size() == 2 && ta->ne[0] == in && tb->ne[1] == out &&
                     ta->ne[1] == tb->ne[0],
                 path, ": ", tensor_name(l, p, "a", a.layout), "/b expected ggml shapes [", in, ", r] and [r, ", out,
                 "]");
      LoraModule m;
      m.in = in;
      m.out = out;
      m.rank = ta->ne[1];
      m.scale = alpha != 0 ? float(alpha / double(m.rank)) : 1.0f;
      m.A.resize(size_t(m.rank * in));
      m.B.resize(size_t(out * m.rank));
      gguf_dequantize(*ta, m.A.data(), path);
      gguf_dequantize(*tb, m.B.data(), path);
      if (arch_profile(c.arch).gguf_permutes_qk && (p == Proj::Q || p == Proj::K))
        unpermute_qk_rows(m.B.data(), heads_of(c, p), c.head_dim, m.rank);
      m.dA.assign(m.A.size(), 0.0f);
      m.dB.assign(m.B.size(), 0.0f);
      for (int j = 0; j < kNumProj; ++j)
        if (module_slot(Proj(j), a.layout) == p) a.config.targets[size_t(j)] = true;
      a.layers[size_t(l)][size_t(i)] = std::move(m);
      used += 2;
    }
  TAIA_CHECK(used > 0, path, ": no LoRA tensor matches the model's layers and projections");
  TAIA_CHECK(used == g.tensors().size(), path, ": ", g.tensors().size() - used,
             " tensor(s) match no layer or projection of the model");
  describe_scales(a, alpha);
  return a;
}

}  // namespace taia

namespace taia {

namespace {

// The model's tensor in the GGUF file's convention (LLaMA Q/K rows permuted, Gemma norms + 1), F32.
std::vector<float> gguf_values(Model& model, const ExpectedTensor& e, const GgufTensor& t, const std::string& path) {
  const ModelConfig& c = model.config;
  std::vector<float> data(size_t(t.numel()));
  const TensorView* v = model.find(e.name);
  TAIA_CHECK(v && v->numel() == t.numel(), path, ": tensor '", t.name, "' does not match the model");
  convert_to_f32(v->dtype, v->data, data.data(), data.size());
  if (arch_profile(c.arch).gguf_permutes_qk) {
    const int64_t row = v->rank() == 2 ? v->shape[1] : 1;
    const auto proj = proj_of_tensor(e.name);
    if (proj == Proj::Q) permute_qk_rows(data.data(), c.num_heads, c.head_dim, row);
    if (proj == Proj::K) permute_qk_rows(data.data(), c.num_kv_heads, c.head_dim, row);
  }
  if (arch_profile(c.arch).gguf_norms_plus_one && is_norm_tensor(e))
    for (float& x : data) x += 1.0f;  // llama.cpp's convention: the stored norm is 1 + weight
  return data;
}

// The type a changed tensor is written in (see save_gguf_model).
DType rewrite_type(DType original, std::optional<DType> requested, int64_t row) {
  DType t = requested.value_or(original);  // taia writes every type it reads
  if (row % block_values(t) != 0) t = DType::F32;  // rows a block type cannot hold (1-D tensors of odd sizes)
  return t;
}

}  // namespace

GgufModelExport save_gguf_model(Model& model, const std::string& base_gguf, const std::string& path,
                                std::optional<DType> dtype) {
  GgufFile base(base_gguf);
  GgufWriter w;
  for (const auto& [key, value] : base.metadata())
    if (key != gguf_key(GgufKey::GeneralAlignment)) w.add_value(key, value);
  const ModelConfig& c = model.config;
  std::map<std::string, const ExpectedTensor*> hf_of;  // GGUF name -> HF tensor
  const std::vector<ExpectedTensor> expected = expected_tensors(c);
  for (const ExpectedTensor& e : expected) hf_of[gguf_tensor_name(e.name, c.norm_layout())] = &e;
  GgufModelExport report;
  for (const GgufTensor& t : base.tensors()) {
    const DType original = gguf_tensor_dtype(t, base_gguf);
    auto it = hf_of.find(t.name);
    if (it != hf_of.end()) {
      const std::vector<float> data = gguf_values(model, *it->second, t, path);
      std::vector<float> stored(data.size());
      convert_to_f32(original, t.data, stored.data(), stored.size());
      if (std::memcmp(stored.data(), data.data(), data.size() * sizeof(float)) != 0) {
        const DType out = rewrite_type(original, dtype, t.ne.empty() ? 1 : t.ne[0]);
        std::vector<uint8_t> bytes(dtype_bytes(out, t.numel()));
        convert_from_f32(data.data(), out, bytes.data(), data.size());
        w.add_tensor(t.name, t.ne, out, bytes.data());
        report.rewritten[t.name] = str_cat(dtype_name(original), " -> ", dtype_name(out));
        continue;
      }
    }
    w.add_tensor(t.name, t.ne, original, t.data);  // unchanged (or not a model tensor: rope_freqs ...)
    ++report.copied;
  }
  w.write(path);
  return report;
}

}  // namespace taia
