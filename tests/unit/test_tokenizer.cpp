#include <fstream>

#include "core/error.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/unicode.h"

namespace taia {
namespace {

TEST(Unicode, ByteLevelAlphabetRoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  const std::string mapped = byte_level_encode(all);
  EXPECT_EQ(utf8_chars(mapped).size(), 256u);
  EXPECT_EQ(byte_level_decode(mapped), all);
  EXPECT_EQ(byte_level_encode(" "), "\xc4\xa0");  // 'Ġ'
  EXPECT_EQ(byte_level_encode("\n"), "\xc4\x8a");  // 'Ċ'
}

TEST(Unicode, CompletePrefixHoldsBackPartialCharacters) {
  const std::string llama = "\xf0\x9f\xa6\x99";  // U+1F999, 4 bytes
  EXPECT_EQ(utf8_complete_prefix("ab"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab" + llama), 6u);
  EXPECT_EQ(utf8_complete_prefix("ab" + llama.substr(0, 1)), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab" + llama.substr(0, 3)), 2u);
  EXPECT_EQ(utf8_chars("a\xff" "b").size(), 3u);  // an invalid byte is a piece of its own
}

// A tiny byte-level BPE tokenizer.json written by the test: merges decide "ab" before "bc".
std::string write_tiny_tokenizer(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << R"({
    "added_tokens": [{"id": 6, "content": "<eos>", "special": true, "lstrip": false, "rstrip": false,
                      "single_word": false, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "<eos>"}}],
                       "special_tokens": {"<eos>": {"id": "<eos>", "ids": [6], "tokens": ["<eos>"]}}},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}, "merges": ["a b", "ab c", "b c"]}
  })";
  return path;
}

TEST(Tokenizer, BpeAppliesMergesByRankAndPostProcessorAddsEos) {
  auto tok = load_tokenizer(write_tiny_tokenizer(test::temp_dir()));
  EXPECT_EQ(tok->encode("abc", false).ids, (std::vector<int32_t>{5}));
  EXPECT_EQ(tok->encode("abc", true).ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(tok->encode("bcab", false).ids, (std::vector<int32_t>{4, 3}));
  EXPECT_EQ(tok->encode("ab<eos>c", false).ids, (std::vector<int32_t>{3, 6, 2}));
  EXPECT_EQ(tok->decode({3, 6, 2}), "ab<eos>c");
  EXPECT_EQ(tok->decode({3, 6, 2}, /*skip_special=*/true), "abc");
  const Encoding e = tok->encode("ab<eos>c", false);
  EXPECT_EQ(e.offsets, (std::vector<uint32_t>{0, 2, 7}));
}

TEST(Tokenizer, RefusesMergesOutsideTheVocabulary) {
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a q"]}})";
  try {
    load_tokenizer(dir + "/tokenizer.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merge 0"), std::string::npos) << e.what();
  }
}

// Two vocabulary pieces on one id would decode that id to one of them at random: refused by
// name. An added token repeating the vocabulary's own piece for its id stays allowed (HF does).
TEST(Tokenizer, RefusesTwoVocabularyPiecesForOneId) {
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/dup.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 1}, "merges": []}})";
  try {
    load_tokenizer(dir + "/dup.json");
    FAIL();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("to id 1"), std::string::npos) << what;
    EXPECT_NE(what.find("'b'"), std::string::npos) << what;
    EXPECT_NE(what.find("'c'"), std::string::npos) << what;
  }
  std::ofstream(dir + "/added.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0, "<s>": 1}, "merges": []},
    "added_tokens": [{"id": 1, "content": "<s>", "special": true}]})";
  EXPECT_NO_THROW(load_tokenizer(dir + "/added.json"));
}

class RealTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(RealTokenizer, IncrementalDecodingNeverSplitsCharactersAndMatchesDecode) {
  const std::string path = test::fixtures_dir() + "/tokenizers/" + GetParam();
  if (!file_exists(path)) GTEST_SKIP() << "fixture not found: " << path;
  auto tok = load_tokenizer(path);
  const std::string text = "Grüße 🦙🚀 日本語 — naïve\n\tend";
  const Encoding e = tok->encode(text, false);
  IncrementalDecoder stream(*tok);
  std::string streamed;
  for (int32_t id : e.ids) {
    const std::string piece = stream.push(id);
    EXPECT_EQ(utf8_complete_prefix(piece), piece.size()) << "emitted half a character";
    streamed += piece;
  }
  streamed += stream.flush();
  EXPECT_EQ(streamed, tok->decode(e.ids));
  EXPECT_EQ(streamed, text);
  // Offsets point at the bytes each token starts at, in order.
  for (size_t i = 1; i < e.offsets.size(); ++i) EXPECT_LE(e.offsets[i - 1], e.offsets[i]);
  EXPECT_EQ(e.offsets.front(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RealTokenizer,
                         ::testing::Values("llama3/tokenizer.json", "qwen3/tokenizer.json", "mistral/tokenizer.json",
                                           "llama2-spm/tokenizer.model", "goldens/ggml-vocab-llama-spm.gguf",
                                           "goldens/ggml-vocab-gpt-2.gguf"));

// A GGUF vocabulary's UNKNOWN-typed pieces (<unk>, the converter's [PADn] rows of Phi-3) decode
// to nothing when special tokens are skipped, as llama.cpp's token_to_piece prints them; control
// tokens too; a normal piece stays.
TEST(Tokenizer, GgufUnknownPiecesAreHiddenWithTheSpecialTokens) {
  const std::string path = test::fixtures_dir() + "/tokenizers/goldens/ggml-vocab-phi-3.gguf";
  if (!file_exists(path)) GTEST_SKIP() << "fixture not found: " << path;
  auto tok = load_tokenizer(path);
  const int32_t pad = *tok->piece_to_id("[PAD32060]"), unk = *tok->piece_to_id("<unk>");
  const int32_t end = *tok->piece_to_id("<|end|>");
  const std::vector<int32_t> hello = tok->encode("Hello", false).ids;
  std::vector<int32_t> ids = {pad, unk, end};
  ids.insert(ids.end(), hello.begin(), hello.end());
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "Hello");
  EXPECT_NE(tok->decode(ids, /*skip_special=*/false).find("[PAD32060]"), std::string::npos);
}

TEST(Tokenizer, ConfigSuppliesBosEosAndTemplate) {
  const std::string dir = test::fixtures_dir() + "/tokenizers/llama3";
  if (!file_exists(dir)) GTEST_SKIP() << "fixture not found: " << dir;
  auto tok = load_tokenizer(dir);
  ASSERT_TRUE(tok->bos_id && tok->eos_id);
  EXPECT_EQ(tok->id_to_piece(*tok->bos_id), "<|begin_of_text|>");
  EXPECT_EQ(chat_template_for(*tok).name, "llama3");
  EXPECT_TRUE(chat_template_for(*tok).always_generation_prompt);
  const auto eot = tok->piece_to_id("<|eot_id|>");
  ASSERT_TRUE(eot);
  EXPECT_NE(std::find(tok->extra_eos_ids.begin(), tok->extra_eos_ids.end(), *eot), tok->extra_eos_ids.end());
}

TEST(ChatTemplate, RecognisesFormatsAndRefusesUnknownNames) {
  EXPECT_EQ(recognize_chat_template("{{ '<|im_start|>' + message['role'] }}")->name, "chatml");
  EXPECT_EQ(recognize_chat_template("<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                                    "assistant.<|im_end|>")->default_system,
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(recognize_chat_template("{% if add_generation_prompt %}<|start_header_id|>{% endif %}")->name, "llama3");
  EXPECT_FALSE(recognize_chat_template("{% if add_generation_prompt %}<|start_header_id|>{% endif %}")
                   ->always_generation_prompt);
  EXPECT_EQ(recognize_chat_template("{{ bos_token + '[INST] ' }}")->name, "llama2");
  EXPECT_FALSE(recognize_chat_template("{{ messages }}").has_value());
  EXPECT_THROW(chat_template_by_name("vicuna"), Error);
  RenderedChat r = render_chat(chat_template_by_name("llama2"),
                               {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}}, true, "<s>", "</s>");
  EXPECT_EQ(r.text, "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
  ASSERT_EQ(r.assistant_spans.size(), 1u);
  EXPECT_EQ(r.text.substr(r.assistant_spans[0].first, r.assistant_spans[0].second - r.assistant_spans[0].first),
            "A1 </s>");
  EXPECT_THROW(render_chat(chat_template_by_name("chatml"), {{"tool", "x"}}, false, "", ""), Error);
}

// Mistral's [INST] template (no <<SYS>>) and Phi-3's, in their two published forms each.
TEST(ChatTemplate, MistralAndPhi3) {
  const auto v02 = recognize_chat_template("{{ '[INST] ' + message['content'] + ' [/INST]' }}{{ message['content'] + "
                                           "eos_token}}");
  ASSERT_TRUE(v02);
  EXPECT_EQ(v02->name, "mistral");
  EXPECT_FALSE(v02->space_after_eos);
  const auto v01 = recognize_chat_template("{{ '[INST] ' + message['content'] + ' [/INST]' }}{{ message['content'] + "
                                           "eos_token + ' ' }}");
  ASSERT_TRUE(v01);
  EXPECT_TRUE(v01->space_after_eos);
  RenderedChat r = render_chat(*v02, {{"user", " U1"}, {"assistant", "A1 "}, {"user", "U2"}}, true, "<s>", "</s>");
  EXPECT_EQ(r.text, "<s>[INST]  U1 [/INST]A1 </s>[INST] U2 [/INST]");  // contents as they are, not trimmed
  EXPECT_THROW(render_chat(*v02, {{"system", "S"}, {"user", "U"}}, false, "<s>", "</s>"), Error);
  EXPECT_THROW(render_chat(*v02, {{"user", "U"}, {"user", "V"}}, false, "<s>", "</s>"), Error);
  const auto phi35 = recognize_chat_template("{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}"
                                             "{% if add_generation_prompt %}");
  ASSERT_TRUE(phi35);
  EXPECT_EQ(phi35->name, "phi3");
  EXPECT_FALSE(phi35->phi3_header_after_user);
  r = render_chat(*phi35, {{"system", "S"}, {"user", "U"}, {"assistant", "A"}}, false, "<s>", "<|endoftext|>");
  EXPECT_EQ(r.text, "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n<|endoftext|>");
  ASSERT_EQ(r.assistant_spans.size(), 1u);
  EXPECT_EQ(r.text.substr(r.assistant_spans[0].first, r.assistant_spans[0].second - r.assistant_spans[0].first),
            "A<|end|>\n");
  ChatTemplate phi3 = *phi35;
  phi3.phi3_header_after_user = true;  // Phi-3-mini's first template: no system turn, no EOS
  EXPECT_EQ(render_chat(phi3, {{"system", "S"}, {"user", "U"}}, true, "<s>", "<|endoftext|>").text,
            "<s><|user|>\nU<|end|>\n<|assistant|>\n");
}

}  // namespace
}  // namespace taia
