"""Small random-model configs (HF config.json fields) of every architecture family taia runs:
COMMON shapes plus each family's own fields. Used by tests/taia/test_architectures.py and the
Python module's tests (tests/python)."""

COMMON = {"vocab_size": 512, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3,
          "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "max_position_embeddings": 256,
          "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False}
ARCHS = {
    "llama": dict(architectures=["LlamaForCausalLM"], model_type="llama"),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", tie_word_embeddings=True),
    "mistral": dict(architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=5),
    "qwen3": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=16),
    "gemma2": dict(architectures=["Gemma2ForCausalLM"], model_type="gemma2", head_dim=16,
                   hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16, attn_logit_softcapping=5.0,
                   final_logit_softcapping=10.0, sliding_window=5, tie_word_embeddings=True),
    "gemma3": dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", head_dim=16,
                   hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16, sliding_window=5,
                   sliding_window_pattern=3, rope_local_base_freq=10000.0, rope_theta=1000000.0,
                   tie_word_embeddings=True),
    "phi3": dict(architectures=["Phi3ForCausalLM"], model_type="phi3", sliding_window=5,
                 original_max_position_embeddings=8,
                 rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(6)],
                               "long_factor": [1.5 + 0.5 * i for i in range(6)]}),
    # Phi-4-mini: a partial rotary (12 of 16 channels: LongRoPE factors for 6 pairs), tied embeddings.
    "phi4_mini": dict(architectures=["Phi3ForCausalLM"], model_type="phi3", head_dim=16, partial_rotary_factor=0.75,
                      tie_word_embeddings=True, original_max_position_embeddings=8,
                      rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(6)],
                                    "long_factor": [1.5 + 0.5 * i for i in range(6)]}),
    # SmolLM3: the middle layer without rotary and windowed.
    "smollm3": dict(architectures=["SmolLM3ForCausalLM"], model_type="smollm3", no_rope_layers=[1, 0, 1],
                    use_sliding_window=True, sliding_window=5),
}
