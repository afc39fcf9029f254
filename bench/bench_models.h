// Model shapes the benchmarks share.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/config.h"

namespace taia::bench {

// The shapes as the models' own config.json files give them (the fields that set the shapes), read
// by the same parser as a user's model.
inline ModelConfig shape_from_config_json(const char* json) {
  return config_from_hf_json(Json::parse(json), "[bench] shape");
}

// Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, tied.
inline ModelConfig qwen25_05b_shape() {
  return shape_from_config_json(R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true})");
}

// Qwen3-0.6B: hidden 1024, 28 layers, 16 heads of 128 (q_dim 2048 > hidden), 8 KV heads,
// intermediate 3072, vocab 151936, tied, QK-norm.
inline ModelConfig qwen3_06b_shape() {
  return shape_from_config_json(R"({"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
    "tie_word_embeddings": true})");
}

// Gemma-3-1B (text): hidden 1152, 26 layers, 4 heads of 256, 1 KV head, intermediate 6912, vocab
// 262144, tied; GeGLU, sandwich norms, QK-norm, a 512-position window on five layers of six.
inline ModelConfig gemma3_1b_shape() {
  return shape_from_config_json(R"({"model_type": "gemma3_text", "vocab_size": 262144, "hidden_size": 1152,
    "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
    "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6,
    "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    "max_position_embeddings": 32768})");
}

// [--threads N] [--stories PATH.gguf] [--quick], shared by bench_inference and bench_eval.
struct BenchArgs {
  int threads = 2;
  bool quick = false;
  std::string stories = "../shared/fixtures/models/stories260K/stories260K.gguf";
  bool ok = true;
};

inline BenchArgs parse_bench_args(int argc, char** argv, const char* program) {
  BenchArgs b;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) b.threads = std::atoi(argv[++i]);
    else if (a == "--stories" && i + 1 < argc) b.stories = argv[++i];
    else if (a == "--quick") b.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--stories PATH.gguf] [--quick]\n", program);
      b.ok = false;
    }
  }
  return b;
}

}  // namespace taia::bench
