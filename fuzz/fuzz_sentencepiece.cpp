// SentencePiece .model files through the loading path (libsentencepiece parses the protobuf,
// taia builds its pipeline from it), then encode and decode.
#include "fuzz_common.h"
#include "model/tokenizer_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = taia::fuzz::write_input("tokenizer.model", data, size);
  taia::fuzz::expect_clean("sentencepiece", [&] {
    auto tok = taia::load_tokenizer(path);
    const auto ids = tok->encode("Hello world, 12 ünï 🙂  tabs\tand\nlines", true).ids;
    tok->decode(ids);
  });
  return 0;
}
