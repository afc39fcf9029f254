#include "core/error.h"
#include "model/config.h"
#include "model/layer_recipe.h"
#include "test_util.h"

namespace taia {
namespace {

Json llama() {
  return Json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "max_position_embeddings": 131072, "tie_word_embeddings": true, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16", "attention_bias": false})");
}

TEST(Config, Llama32Fields) {
  ModelConfig c = config_from_hf_json(llama(), "config.json");
  EXPECT_EQ(c.arch, Arch::Llama);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_ids, (std::vector<int64_t>{128000}));
  EXPECT_FALSE(c.qkv_bias);
  // Llama 3.2 1B has 1,235,814,400 parameters.
  EXPECT_EQ(c.parameter_count(), 1235814400);
}

TEST(Config, Qwen25HasQkvBiasButNoOutputBias) {
  Json j = Json::parse(R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
    "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151643, "use_sliding_window": false,
    "sliding_window": 32768, "hidden_act": "silu"})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Qwen2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.head_dim, 64);
  // Qwen2.5-0.5B: 494,032,768 parameters.
  EXPECT_EQ(c.parameter_count(), 494032768);
}

TEST(Config, RopeParametersForm) {
  Json j = llama();
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = Json::parse(R"({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  j["rope_parameters"] = Json::parse(R"({"rope_type": "default", "rope_theta": 1234.0})");
  c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_FLOAT_EQ(c.rope_theta, 1234.0f);
}

TEST(Config, HeadDimDefaultsToHiddenOverHeads) {
  Json j = llama();
  j.erase("head_dim");
  EXPECT_EQ(config_from_hf_json(j, "c").head_dim, 2048 / 32);
}

TEST(Config, RejectsInconsistentOrUnknown) {
  auto expect_error = [](Json j, const std::string& needle) {
    try {
      config_from_hf_json(j, "config.json");
      ADD_FAILURE() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
  };
  Json j = llama();
  j["num_key_value_heads"] = 7;
  expect_error(j, "num_key_value_heads");
  j = llama();
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error(j, "model_type");
  j = llama();
  j["hidden_size"] = "big";
  expect_error(j, "hidden_size");
  j = llama();
  j["rope_scaling"]["rope_type"] = "yarn";
  expect_error(j, "rope_type");
  j = llama();
  j["eos_token_id"] = 999999;
  expect_error(j, "eos_token_id");
  j = llama();
  j.erase("vocab_size");
  expect_error(j, "vocab_size");
}

TEST(Config, RoundTripsThroughHfJson) {
  ModelConfig c = config_from_hf_json(llama(), "c");
  ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.parameter_count(), c.parameter_count());
  EXPECT_EQ(d.eos_token_ids, c.eos_token_ids);
  EXPECT_EQ(d.rope_scaling.type, c.rope_scaling.type);
  EXPECT_FLOAT_EQ(d.rope_scaling.high_freq_factor, c.rope_scaling.high_freq_factor);
}

// Mistral 7B v0.1: LLaMA's layer without biases and a 4096-position sliding window; v0.2 and
// later write null (no window). It must not be read as a plain LLaMA (the window was ignored).
TEST(Config, MistralSlidingWindow) {
  Json j = Json::parse(R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32000,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "max_position_embeddings": 32768,
    "sliding_window": 4096, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu"})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Mistral);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.layer_window(31), 4096);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.parameter_count(), 7241732096);  // Mistral-7B-v0.1
  EXPECT_STREQ(arch_profile(c.arch).gguf_arch, "llama");  // llama.cpp converts Mistral as LLaMA
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.arch, Arch::Mistral);
  EXPECT_EQ(d.sliding_window, 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(config_from_hf_json(j, "c").sliding_window, 0);
  EXPECT_EQ(config_to_hf_json(config_from_hf_json(j, "c"))["sliding_window"], nullptr);
  j["sliding_window"] = 0;
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
}

// Gemma-2-2B: GeGLU, sandwich norms, soft-capping, query_pre_attn_scalar, a window on the even
// layers; 2,614,341,888 parameters as HF counts them.
TEST(Config, Gemma2Fields) {
  Json j = Json::parse(R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "vocab_size": 256000,
    "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
    "num_key_value_heads": 4, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0, "sliding_window": 4096, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
    "max_position_embeddings": 8192, "attention_bias": false, "bos_token_id": 2, "eos_token_id": 1})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Gemma2);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_TRUE(c.norm_plus_one && c.scale_embeddings && c.sandwich_norms && c.tie_word_embeddings);
  EXPECT_EQ(c.layer_window(0), 4096);
  EXPECT_EQ(c.layer_window(1), 0);
  EXPECT_EQ(c.layer_window(24), 4096);
  EXPECT_DOUBLE_EQ(c.attn_softcap, 50.0);
  EXPECT_FLOAT_EQ(c.attention_scale(), 1.0f / 16.0f);
  EXPECT_EQ(c.parameter_count(), 2614341888);
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.arch, Arch::Gemma2);
  EXPECT_EQ(d.parameter_count(), c.parameter_count());
  EXPECT_DOUBLE_EQ(d.final_softcap, 30.0);
  EXPECT_EQ(d.sliding_window, 4096);
  j["hidden_activation"] = "gelu";  // the exact GELU: not what taia computes
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
}

// Gemma-3-1B (text): Gemma 2's layer with QK-norm, no soft-capping, five windowed layers to one
// global, the windowed ones rotating with rope_local_base_freq.
TEST(Config, Gemma3TextFields) {
  Json j = Json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
    "vocab_size": 262144, "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
    "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6,
    "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0, "rope_scaling": null, "rms_norm_eps": 1e-06,
    "attn_logit_softcapping": null, "final_logit_softcapping": null, "max_position_embeddings": 32768,
    "bos_token_id": 2, "eos_token_id": [1, 106]})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Gemma3);
  EXPECT_TRUE(c.qk_norm && c.sandwich_norms && c.norm_plus_one && c.tie_word_embeddings);
  EXPECT_EQ(c.attn_softcap, 0);
  EXPECT_EQ(c.layer_window(0), 512);
  EXPECT_EQ(c.layer_window(5), 0);  // every sixth layer is global
  EXPECT_TRUE(c.layer_uses_local_rope(4));
  EXPECT_FALSE(c.layer_uses_local_rope(11));
  // 26 x (attention 2,949,120 + MLP 23,887,872 + norms 5,120) + embeddings 301,989,888 + final norm
  EXPECT_EQ(c.parameter_count(), 999885952);
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.arch, Arch::Gemma3);
  EXPECT_EQ(d.sliding_window_pattern, 6);
  EXPECT_DOUBLE_EQ(d.rope_local_theta, 10000.0);
  // layer_types decides as written, over the pattern (HF derives it from the pattern only when
  // absent), and survives a save.
  j["layer_types"] = Json::array();
  for (int l = 0; l < 26; ++l) j["layer_types"].push_back(l % 2 ? "full_attention" : "sliding_attention");
  const ModelConfig alternating = config_from_hf_json(j, "c");
  const ModelConfig saved = config_from_hf_json(config_to_hf_json(alternating), "saved");
  for (int64_t l = 0; l < 26; ++l) {
    EXPECT_EQ(alternating.layer_window(l), l % 2 ? 0 : 512) << l;
    EXPECT_EQ(alternating.layer_uses_local_rope(l), l % 2 == 0) << l;
    EXPECT_EQ(saved.layer_window(l), alternating.layer_window(l)) << l;
  }
  j["layer_types"][3] = "chunked_attention";
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);  // a kind taia does not implement is refused by name
  j["layer_types"] = Json::array({"sliding_attention"});
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);  // one entry a layer
  j.erase("layer_types");
  j["sliding_window_pattern"] = 1;  // HF: (l + 1) % 1 == 0, every layer global
  const ModelConfig all_global = config_from_hf_json(j, "c");
  for (int64_t l : {0, 5, 25}) {
    EXPECT_EQ(all_global.layer_window(l), 0);
    EXPECT_FALSE(all_global.layer_uses_local_rope(l));
  }
  j["sliding_window_pattern"] = 6;
  j["use_bidirectional_attention"] = true;  // EmbeddingGemma: not a causal LM
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
}

// transformers v5 writes Gemma 3's RoPE per layer type, without a top-level rope_theta.
TEST(Config, Gemma3PerLayerTypeRopeParameters) {
  Json j = Json::parse(R"({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
    "vocab_size": 262208, "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 1024,
    "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}})");
  const ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1000000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);
  EXPECT_DOUBLE_EQ(c.rope_local_theta, 10000.0);
  j["rope_parameters"]["sliding_attention"]["rope_type"] = "linear";  // the local layers are never scaled
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
  j["model_type"] = "llama";  // the per-layer form is Gemma 3's only
  j["architectures"] = {"LlamaForCausalLM"};
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
}

// Qwen3-0.6B: QK-norm, head_dim 128 with hidden 1024 and 16 heads (not hidden / heads), tied
// embeddings, no biases.
TEST(Config, Qwen3QkNormAndExplicitHeadDim) {
  Json j = Json::parse(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
    "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-06, "rope_theta": 1000000,
    "max_position_embeddings": 40960, "tie_word_embeddings": true, "attention_bias": false,
    "use_sliding_window": false, "sliding_window": null, "max_window_layers": 28, "hidden_act": "silu",
    "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16"})");
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.parameter_count(), 596049920);  // 0.44B without the embeddings, as Qwen reports
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.arch, Arch::Qwen3);
  EXPECT_TRUE(d.qk_norm);
  EXPECT_EQ(d.parameter_count(), c.parameter_count());
  j["attention_bias"] = true;  // Qwen3 puts it on q, k, v and o
  const ModelConfig b = config_from_hf_json(j, "c");
  EXPECT_TRUE(b.qkv_bias && b.o_bias && !b.mlp_bias);
  j["use_sliding_window"] = true;
  EXPECT_THROW(config_from_hf_json(j, "c"), Error);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// Phi-3.5-mini: fused projections, LongRoPE over 48 factor pairs (max / original = 32, so the
// attention factor is sqrt(1 + ln 32 / ln 4096)), a window on every layer.
TEST(Config, Phi3LongRopeFields) {
  Json j = Json::parse(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu",
    "hidden_size": 3072, "intermediate_size": 8192, "max_position_embeddings": 131072, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
    "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 262144, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32064})");
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", std::vector<double>(48, 1.05)},
                       {"long_factor", std::vector<double>(48, 7.5)}};
  ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::Phi3);
  EXPECT_TRUE(c.fused_proj);
  EXPECT_EQ(c.proj_layout(), ProjLayout::Fused);
  EXPECT_EQ(c.head_dim, 96);
  EXPECT_EQ(c.layer_window(7), 262144);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::LongRope);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(c.rope_scaling.attention_factor, float(std::sqrt(1.0 + std::log(32.0) / std::log(4096.0))));
  EXPECT_FALSE(c.rope_scaling.uses_long_factors(4096));
  EXPECT_TRUE(c.rope_scaling.uses_long_factors(4097));
  // 3,821,079,552: Phi-3.5-mini's count (32 x 113,252,352 + 2 x 98,500,608 + 3,072).
  EXPECT_EQ(c.parameter_count(), 3821079552);
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");  // as Phi3Config accepts it
  EXPECT_EQ(config_to_hf_json(c)["rope_scaling"].size(), 3u);
  EXPECT_EQ(d.rope_scaling.long_factor, c.rope_scaling.long_factor);
  EXPECT_EQ(d.rope_scaling.attention_factor, c.rope_scaling.attention_factor);
  EXPECT_EQ(d.sliding_window, 262144);
  // What taia does not implement is refused by name.
  for (const auto& [key, value, needle] :
       {std::tuple<const char*, Json, const char*>{"partial_rotary_factor", 1.5, "partial_rotary_factor"},
        {"no_rope_layers", Json::array({1, 0}), "no_rope_layers"},
        {"resid_pdrop", 0.1, "resid_pdrop"},
        {"attention_bias", true, "attention_bias"},
        {"rope_scaling", Json::parse(R"({"type": "yarn", "factor": 4.0})"), "yarn"}}) {
    Json bad = j;
    bad[key] = value;
    try {
      config_from_hf_json(bad, "config.json");
      ADD_FAILURE() << key << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  Json short_factors = j;
  short_factors["rope_scaling"]["short_factor"] = std::vector<double>(47, 1.0);
  EXPECT_THROW(config_from_hf_json(short_factors, "c"), Error);
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// Phi-4-mini-instruct's config.json (its keys that change the math): Phi-3 with a partial rotary.
TEST(Config, Phi4MiniPartialRotary) {
  Json j = Json::parse(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 199999, "embd_pdrop": 0.0, "eos_token_id": 199999,
    "hidden_act": "silu", "hidden_size": 3072, "intermediate_size": 8192, "max_position_embeddings": 131072,
    "num_attention_heads": 24, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.75, "resid_pdrop": 0.0,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "vocab_size": 200064})");
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", std::vector<double>(48, 1.0)},
                       {"long_factor", std::vector<double>(48, 3.0)}};
  const ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dims(), 96);
  EXPECT_EQ(model_recipe(c).layers[5].rotary.dims, 96);
  EXPECT_EQ(c.parameter_count(), 3836021760);  // HF's count for Phi-4-mini: 3.84B
  const ModelConfig d = config_from_hf_json(config_to_hf_json(c), "d");
  EXPECT_EQ(d.partial_rotary_factor, 0.75);
  EXPECT_EQ(d.rope_scaling.short_factor.size(), 48u);
  // LongRoPE's factors cover the rotated channels only: 64 (head_dim / 2) are refused.
  j["rope_scaling"]["short_factor"] = std::vector<double>(64, 1.0);
  EXPECT_THROW(config_from_hf_json(j, "config.json"), Error);
  // A partial rotary is Phi-3's only: refused by name elsewhere.
  Json llama = {{"model_type", "llama"}, {"vocab_size", 10}, {"hidden_size", 8}, {"intermediate_size", 8},
                {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"partial_rotary_factor", 0.5}};
  try {
    config_from_hf_json(llama, "config.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("partial_rotary_factor 0.5 is not supported for LlamaForCausalLM"),
              std::string::npos) << e.what();
  }
}

// SmolLM3-3B's config.json: every 4th layer without rotary (no_rope_layers), no windows.
TEST(Config, SmolLM3NoPeLayers) {
  Json j = Json::parse(R"({"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3",
    "attention_bias": false, "bos_token_id": null, "eos_token_id": 128012, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 11008, "max_position_embeddings": 65536, "mlp_bias": false,
    "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 4, "pad_token_id": 128004,
    "rms_norm_eps": 1e-06, "rope_theta": 5000000.0, "sliding_window": null, "use_sliding_window": false,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 128256})");
  std::vector<int> rope;
  for (int l = 0; l < 36; ++l) rope.push_back((l + 1) % 4 != 0);
  j["no_rope_layers"] = rope;
  const ModelConfig c = config_from_hf_json(j, "config.json");
  EXPECT_EQ(c.arch, Arch::SmolLM3);
  EXPECT_TRUE(c.layer_rotates(2));
  EXPECT_FALSE(c.layer_rotates(3));
  EXPECT_EQ(c.layer_window(3), 0);
  const ModelRecipe r = model_recipe(c);
  EXPECT_EQ(r.layers[3].rotary.table, RotaryTable::None);
  EXPECT_EQ(r.layers[4].rotary.table, RotaryTable::Global);
  EXPECT_EQ(c.parameter_count(), 3075098624);  // HF's count for SmolLM3-3B: 3.08B
  // Without the key, HF's default: a NoPE layer every no_rope_layer_interval (4) layers.
  Json by_interval = j;
  by_interval.erase("no_rope_layers");
  EXPECT_EQ(config_from_hf_json(by_interval, "c").rotary_layers, c.rotary_layers);
  // Windows only with use_sliding_window; then (no layer_types) on the NoPE layers.
  Json windowed = j;
  windowed["use_sliding_window"] = true;
  windowed["sliding_window"] = 4096;
  const ModelConfig w = config_from_hf_json(windowed, "c");
  EXPECT_EQ(w.layer_window(3), 4096);
  EXPECT_EQ(w.layer_window(2), 0);
  const ModelConfig back = config_from_hf_json(config_to_hf_json(w), "back");
  EXPECT_EQ(back.local_layers, w.local_layers);
  EXPECT_EQ(back.rotary_layers, w.rotary_layers);
  Json bad = j;
  bad["no_rope_layers"][7] = 2;
  EXPECT_THROW(config_from_hf_json(bad, "config.json"), Error);
}

}  // namespace
}  // namespace taia
