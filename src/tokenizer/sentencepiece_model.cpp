// SentencePiece .model files through libsentencepiece (the reference implementation).
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/sentencepiece_model.h"

namespace taia {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    sentencepiece::util::Status status;
    try {
      status = sp_.Load(path);
    } catch (const std::exception& e) {  // e.g. darts-clone's "zero-length key" on a crafted vocabulary
      fail(path, ": not a usable SentencePiece model: libsentencepiece failed: ", e.what());
    }
    TAIA_CHECK(status.ok(), path, ": not a SentencePiece model: ", status.ToString());
    kind = "sentencepiece";
    source = path;
    if (sp_.bos_id() >= 0) bos_id = sp_.bos_id();
    if (sp_.eos_id() >= 0) eos_id = sp_.eos_id();
    // Decoding goes through our own decoder chain over the model's pieces: libsentencepiece
    // replaces an incomplete byte sequence with U+FFFD, which breaks streaming and exact bytes.
    const std::string space = "\xe2\x96\x81";
    for (int i = 0; i < sp_.GetPieceSize(); ++i) {
      pieces_.pieces.push_back(sp_.IdToPiece(i));
      if (sp_.IsControl(i) || sp_.IsUnknown(i)) pieces_.added.push_back({i, sp_.IdToPiece(i), true});
    }
    pieces_.decoders = {{DecoderStep::Kind::Replace, space, " "}, {DecoderStep::Kind::ByteFallback, "", ""},
                        {DecoderStep::Kind::Fuse, "", ""}, {DecoderStep::Kind::Strip, " ", ""}};
    pieces_.decoders.back().start = 1;
    pieces_.finalize();
  }

  Encoding encode(std::string_view text, bool add_special) const override {
    Encoding e;
    if (add_special && bos_id) {
      e.ids.push_back(*bos_id);
      e.offsets.push_back(0);
    }
    const auto spt = sp_.EncodeAsImmutableProto(text);
    for (size_t i = 0; i < spt.pieces_size(); ++i) {
      const auto p = spt.pieces(int(i));
      e.ids.push_back(int32_t(p.id()));
      e.offsets.push_back(p.begin());
    }
    return e;
  }

  std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override {
    return pieces_.decode(ids, skip_special);
  }

  std::string id_to_piece(int32_t id) const override {
    TAIA_CHECK(id >= 0 && id < sp_.GetPieceSize(), "[id_to_piece] token id ", id, " is outside the vocabulary");
    return sp_.IdToPiece(id);
  }
  std::optional<int32_t> piece_to_id(std::string_view piece) const override {
    const int id = sp_.PieceToId(piece);
    if (id == sp_.unk_id() && piece != sp_.IdToPiece(sp_.unk_id())) return std::nullopt;
    return id;
  }
  int64_t vocab_size() const override { return sp_.GetPieceSize(); }
  bool is_special(int32_t id) const override { return sp_.IsControl(id) || sp_.IsUnknown(id); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  PipelineTokenizer pieces_;  // pieces + decoder chain only (never encodes)
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace taia
