#include "io/gguf_keys.h"

#include <utility>

#include "core/error.h"

namespace taia {
namespace {

constexpr std::pair<GgufKey, const char*> kGgufKeys[] = {
    {GgufKey::GeneralArchitecture, "general.architecture"},
    {GgufKey::GeneralType, "general.type"},
    {GgufKey::GeneralAlignment, "general.alignment"},
    {GgufKey::ContextLength, "%s.context_length"},
    {GgufKey::EmbeddingLength, "%s.embedding_length"},
    {GgufKey::FeedForwardLength, "%s.feed_forward_length"},
    {GgufKey::BlockCount, "%s.block_count"},
    {GgufKey::HeadCount, "%s.attention.head_count"},
    {GgufKey::HeadCountKv, "%s.attention.head_count_kv"},
    {GgufKey::KeyLength, "%s.attention.key_length"},
    {GgufKey::RmsNormEpsilon, "%s.attention.layer_norm_rms_epsilon"},
    {GgufKey::SlidingWindow, "%s.attention.sliding_window"},
    {GgufKey::AttnLogitSoftcap, "%s.attn_logit_softcapping"},
    {GgufKey::FinalLogitSoftcap, "%s.final_logit_softcapping"},
    {GgufKey::RopeFreqBase, "%s.rope.freq_base"},
    {GgufKey::RopeDimensionCount, "%s.rope.dimension_count"},
    {GgufKey::RopeScalingType, "%s.rope.scaling.type"},
    {GgufKey::RopeScalingFactor, "%s.rope.scaling.factor"},
    {GgufKey::RopeScalingOriginalContext, "%s.rope.scaling.original_context_length"},
    {GgufKey::RopeScalingAttnFactor, "%s.rope.scaling.attn_factor"},
    {GgufKey::TokenizerModel, "tokenizer.ggml.model"},
    {GgufKey::TokenizerPre, "tokenizer.ggml.pre"},
    {GgufKey::TokenizerTokens, "tokenizer.ggml.tokens"},
    {GgufKey::TokenizerTokenType, "tokenizer.ggml.token_type"},
    {GgufKey::TokenizerScores, "tokenizer.ggml.scores"},
    {GgufKey::TokenizerMerges, "tokenizer.ggml.merges"},
    {GgufKey::TokenizerBosId, "tokenizer.ggml.bos_token_id"},
    {GgufKey::TokenizerEosId, "tokenizer.ggml.eos_token_id"},
    {GgufKey::TokenizerUnknownId, "tokenizer.ggml.unknown_token_id"},
    {GgufKey::TokenizerAddBos, "tokenizer.ggml.add_bos_token"},
    {GgufKey::TokenizerAddSpacePrefix, "tokenizer.ggml.add_space_prefix"},
    {GgufKey::TokenizerChatTemplate, "tokenizer.chat_template"},
    {GgufKey::AdapterType, "adapter.type"},
    {GgufKey::AdapterLoraAlpha, "adapter.lora.alpha"},
};

}  // namespace

std::string gguf_key(GgufKey key, const std::string& arch) {
  for (const auto& [k, name] : kGgufKeys) {
    if (k != key) continue;
    std::string s = name;
    if (s.rfind("%s.", 0) != 0) return s;
    TAIA_CHECK(!arch.empty(), "[gguf_key] ", s, " expected an architecture name");
    return arch + s.substr(2);
  }
  fail("[gguf_key] a key missing from the table");
}

}  // namespace taia
