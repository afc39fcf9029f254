// tokenizer.json (HF tokenizers): load, then encode and decode a mixed-script string.
#include "fuzz_common.h"
#include "model/tokenizer_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = taia::fuzz::write_input("tokenizer.json", data, size);
  taia::fuzz::expect_clean("tokenizer.json", [&] {
    auto tok = taia::load_tokenizer(path);
    const auto ids = tok->encode("Hello world, 12 ünï 🙂  tabs\tand\nlines <s>", true).ids;
    tok->decode(ids);
    tok->decode(ids, /*skip_special=*/true);
  });
  return 0;
}
