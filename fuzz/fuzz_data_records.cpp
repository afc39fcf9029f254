// Training data records (Alpaca / ShareGPT / OpenAI chat; JSON array or JSON Lines; text). The
// first byte picks the file's extension; the rest is the file.
#include "fuzz_common.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kExt[] = {".jsonl", ".json", ".txt"};
  const std::string path = taia::fuzz::write_input(std::string("data") + kExt[data[0] % 3], data + 1, size - 1);
  for (bool skip : {false, true})
    taia::fuzz::expect_clean("data records", [&] {
      taia::DataStats stats;
      taia::load_records(path, skip, stats);
    });
  return 0;
}
