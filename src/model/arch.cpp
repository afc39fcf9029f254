#include "model/arch.h"

#include "core/error.h"

namespace taia {

namespace {

constexpr ArchProfile kArchs[] = {
    {.arch = Arch::Llama, .model_type = "llama", .hf_class = "LlamaForCausalLM", .gguf_arch = "llama",
     .gguf_permutes_qk = true},
    {.arch = Arch::Qwen2, .model_type = "qwen2", .hf_class = "Qwen2ForCausalLM", .gguf_arch = "qwen2",
     .biases = BiasRule::QkvAlways},
    {.arch = Arch::Mistral, .model_type = "mistral", .hf_class = "MistralForCausalLM", .gguf_arch = "llama",
     .gguf_permutes_qk = true, .biases = BiasRule::None, .window = WindowRule::EveryLayer},
    {.arch = Arch::Qwen3, .model_type = "qwen3", .hf_class = "Qwen3ForCausalLM", .gguf_arch = "qwen3",
     .qk_norm = true, .biases = BiasRule::AttentionKey},
    {.arch = Arch::Gemma2, .model_type = "gemma2", .hf_class = "Gemma2ForCausalLM", .gguf_arch = "gemma2",
     .gguf_norms_plus_one = true, .activation = Activation::GeluTanh, .norms = NormLayout::Sandwich,
     .norm_plus_one = true, .scale_embeddings = true, .biases = BiasRule::AttentionKey,
     .window = WindowRule::GemmaPattern, .default_head_dim = 256, .default_tied = true},
    {.arch = Arch::Gemma3, .model_type = "gemma3_text", .hf_class = "Gemma3ForCausalLM", .gguf_arch = "gemma3",
     .gguf_norms_plus_one = true, .activation = Activation::GeluTanh, .norms = NormLayout::Sandwich,
     .norm_plus_one = true, .scale_embeddings = true, .qk_norm = true, .biases = BiasRule::AttentionKey,
     .window = WindowRule::GemmaPattern, .default_head_dim = 256, .default_rope_theta = 1000000.0,
     .default_tied = true},
    {.arch = Arch::Phi3, .model_type = "phi3", .hf_class = "Phi3ForCausalLM", .gguf_arch = "phi3",
     .projections = ProjLayout::Fused, .biases = BiasRule::None, .window = WindowRule::EveryLayer,
     .reads_partial_rotary = true},
    {.arch = Arch::SmolLM3, .model_type = "smollm3", .hf_class = "SmolLM3ForCausalLM",
     .window = WindowRule::LayerTypesKey, .reads_no_rope_layers = true, .default_rope_theta = 2000000.0,
     .default_tied = true},
};

std::string joined(const char* ArchProfile::*field, const char* quote) {
  std::string s;
  for (const ArchProfile& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(quote) + a.*field + quote;
  return s;
}

}  // namespace

const ArchProfile& arch_profile(Arch a) {
  for (const ArchProfile& p : kArchs)
    if (p.arch == a) return p;
  fail("[arch] no profile for architecture ", int(a));
}
const char* arch_name(Arch a) { return arch_profile(a).model_type; }
const char* arch_hf_class(Arch a) { return arch_profile(a).hf_class; }

const ArchProfile* find_arch(const std::string& model_type, const std::string& hf_class) {
  for (const ArchProfile& a : kArchs)
    if (model_type == a.model_type) return &a;
  for (const ArchProfile& a : kArchs)
    if (hf_class == a.hf_class) return &a;
  return nullptr;
}

std::string arch_model_types() { return joined(&ArchProfile::model_type, "'"); }
std::string arch_hf_classes() { return joined(&ArchProfile::hf_class, ""); }

Arch arch_from_gguf(const std::string& gguf_arch, const std::string& origin) {
  std::string names;
  for (const ArchProfile& a : kArchs) {
    if (!a.gguf_arch) continue;
    if (gguf_arch == a.gguf_arch) return a.arch;
    if (names.find(a.gguf_arch) == std::string::npos) names += (names.empty() ? "'" : ", '") + std::string(a.gguf_arch) + "'";
  }
  fail(origin, ": general.architecture expected one of ", names, ", got '", gguf_arch, "'");
}

const char* arch_gguf_name(Arch a, const std::string& what) {
  const ArchProfile& p = arch_profile(a);
  TAIA_CHECK(p.gguf_arch != nullptr, what, ": taia has no GGUF form of ", p.hf_class,
             " (llama.cpp's converter that taia follows has none); use the HF or PEFT formats");
  return p.gguf_arch;
}

}  // namespace taia
