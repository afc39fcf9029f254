#include "tokenizer/spm_trainer.h"

#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"

namespace taia {
namespace {

class VectorSentences : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentences(const std::vector<std::string>& s) : s_(s) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& s_;
  size_t i_ = 0;
};

}  // namespace

void train_sentencepiece(const std::vector<std::string>& sentences, const SpmTrainOptions& o, const std::string& path) {
  TAIA_CHECK(!sentences.empty(), "[train_sentencepiece] ", path, ": expected at least one sentence, got none");
  TAIA_CHECK(o.vocab_size >= 16, "[train_sentencepiece] ", path, ": vocab_size expected >= 16, got ", o.vocab_size);
  std::string symbols;
  for (const auto& s : o.user_defined_symbols) {
    TAIA_CHECK(s.find(',') == std::string::npos && !s.empty(), "[train_sentencepiece] ", path,
               ": user-defined symbol expected non-empty without ',', got '", s, "'");
    symbols += (symbols.empty() ? "" : ",") + s;
  }
  std::unordered_map<std::string, std::string> args = {
      {"model_type", o.model_type},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", "1.0"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"split_digits", o.split_digits ? "true" : "false"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", "65536"},
      {"input_sentence_size", "0"},  // every sentence, no sampling
      {"shuffle_input_sentence", "false"},
      {"num_threads", std::to_string(o.threads < 1 ? 1 : o.threads)},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  if (!symbols.empty()) args["user_defined_symbols"] = symbols;
  VectorSentences it(sentences);
  std::string proto;
  sentencepiece::util::Status status;
  try {
    status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  } catch (const std::exception& e) {
    fail("[train_sentencepiece] ", path, ": libsentencepiece failed: ", e.what());
  }
  TAIA_CHECK(status.ok(), "[train_sentencepiece] ", path, ": libsentencepiece failed: ", status.ToString());
  write_file_atomic(path, proto);
}

}  // namespace taia
