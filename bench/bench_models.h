// Model shapes the benchmarks share.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/config.h"

namespace taia::bench {

// Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936, tied.
inline ModelConfig qwen25_05b_shape() {
  ModelConfig c;
  c.arch = Arch::Qwen2;
  c.vocab_size = 151936;
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_layers = 24;
  c.num_heads = 14;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 32768;
  c.tie_word_embeddings = true;
  c.qkv_bias = true;
  return c;
}

// Qwen3-0.6B: hidden 1024, 28 layers, 16 heads of 128 (q_dim 2048 > hidden), 8 KV heads,
// intermediate 3072, vocab 151936, tied, QK-norm.
inline ModelConfig qwen3_06b_shape() {
  ModelConfig c;
  c.arch = Arch::Qwen3;
  c.vocab_size = 151936;
  c.hidden_size = 1024;
  c.intermediate_size = 3072;
  c.num_layers = 28;
  c.num_heads = 16;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.max_position_embeddings = 40960;
  c.tie_word_embeddings = true;
  c.qk_norm = true;
  return c;
}

// Gemma-3-1B (text): hidden 1152, 26 layers, 4 heads of 256, 1 KV head, intermediate 6912, vocab
// 262144, tied; GeGLU, sandwich norms, QK-norm, a 512-position window on five layers of six.
inline ModelConfig gemma3_1b_shape() {
  ModelConfig c;
  c.arch = Arch::Gemma3;
  c.vocab_size = 262144;
  c.hidden_size = 1152;
  c.intermediate_size = 6912;
  c.num_layers = 26;
  c.num_heads = 4;
  c.num_kv_heads = 1;
  c.head_dim = 256;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1000000.0;
  c.rope_local_theta = 10000.0;
  c.max_position_embeddings = 32768;
  c.tie_word_embeddings = true;
  c.qk_norm = true;
  c.activation = Activation::GeluTanh;
  c.norm_plus_one = c.scale_embeddings = c.sandwich_norms = true;
  c.query_pre_attn_scalar = 256;
  c.sliding_window = 512;
  c.sliding_window_pattern = 6;
  return c;
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
