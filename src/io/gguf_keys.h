// The GGUF metadata keys taia reads and writes, in one table (as llama.cpp's LLM_KV_NAMES):
// a key whose name starts with "%s." belongs to the architecture, whose general.architecture
// value replaces the "%s".
#pragma once
#include <string>

namespace taia {

enum class GgufKey {
  // general
  GeneralArchitecture, GeneralType, GeneralAlignment,
  // the model's hyperparameters (per architecture)
  ContextLength, EmbeddingLength, FeedForwardLength, BlockCount, HeadCount, HeadCountKv, KeyLength,
  RmsNormEpsilon, SlidingWindow, AttnLogitSoftcap, FinalLogitSoftcap,
  RopeFreqBase, RopeDimensionCount, RopeScalingType, RopeScalingFactor, RopeScalingOriginalContext,
  RopeScalingAttnFactor,
  // the vocabulary
  TokenizerModel, TokenizerPre, TokenizerTokens, TokenizerTokenType, TokenizerScores, TokenizerMerges,
  TokenizerBosId, TokenizerEosId, TokenizerUnknownId, TokenizerAddBos, TokenizerAddSpacePrefix,
  TokenizerChatTemplate,
  // LoRA adapter files
  AdapterType, AdapterLoraAlpha,
};

// The key's name; `arch` (general.architecture's value) is required for the per-architecture keys.
std::string gguf_key(GgufKey key, const std::string& arch = "");

// The prefix every vocabulary array key shares ("tokenizer.ggml.").
inline constexpr const char* kGgufTokenizerPrefix = "tokenizer.ggml.";

}  // namespace taia
