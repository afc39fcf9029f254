#include "perf/presets.h"

#include "core/error.h"
#include "core/json_util.h"

namespace taia {

const std::vector<BenchPreset>& bench_presets() {
  static const std::vector<BenchPreset> presets = {
      {"qwen2-0.5b", "Qwen2.5-0.5B: hidden 896, 24 layers, 14 / 2 heads, FFN 4864, tied 151,936-token vocabulary",
       R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
           "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true})"},
      {"qwen2.5-1.5b", "Qwen2.5-1.5B: hidden 1536, 28 layers, 12 / 2 heads of 128, FFN 8960, tied 151,936-token vocabulary",
       R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
           "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true})"},
      {"qwen3-0.6b", "Qwen3-0.6B: hidden 1024, 28 layers, 16 heads of 128 / 8 KV heads, FFN 3072, QK-norm, tied",
       R"({"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
           "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
           "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
           "tie_word_embeddings": true})"},
      {"gemma3-1b", "Gemma-3-1B (text): hidden 1152, 26 layers, 4 heads of 256 / 1 KV head, FFN 6912, windows",
       R"({"model_type": "gemma3_text", "vocab_size": 262144, "hidden_size": 1152, "intermediate_size": 6912,
           "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
           "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6,
           "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
           "max_position_embeddings": 32768})"},
      {"llama-34m", "the PyTorch training peer's model: LLaMA, dim 512, 8 layers, 8 heads, FFN 1376, vocab 8000",
       R"({"model_type": "llama", "vocab_size": 8000, "hidden_size": 512, "intermediate_size": 1376,
           "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "max_position_embeddings": 2048, "tie_word_embeddings": false})"},
      {"llama-58m", "LLaMA, dim 512, 8 layers, 8 heads, FFN 1376, vocab 32,000 (LLaMA 2's), untied",
       R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1376,
           "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "max_position_embeddings": 2048, "tie_word_embeddings": false})"},
  };
  return presets;
}

ModelConfig bench_preset_config(const std::string& name) {
  std::string known;
  for (const BenchPreset& p : bench_presets()) {
    if (name == p.name) return config_from_hf_json(Json::parse(p.config_json), std::string("[preset ") + p.name + "]");
    known += std::string(known.empty() ? "" : ", ") + p.name;
  }
  fail("[bench] unknown preset '", name, "': expected one of ", known);
}

}  // namespace taia
