// safetensors header and offsets: SafetensorsFile validates, then every tensor's bytes are read.
#include "fuzz_common.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = taia::fuzz::write_input("in.safetensors", data, size);
  taia::fuzz::expect_clean("safetensors", [&] {
    taia::SafetensorsFile f(path);
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors())
      for (uint64_t i = 0; i < t.end - t.begin; i += 64) sink = sink ^ t.data[i];
  });
  return 0;
}
